package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tritongate/tritongate/internal/onnxmodel"
	"github.com/tritongate/tritongate/internal/tensor"
)

func newInspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect MODEL.onnx...",
		Short: "Show an ONNX model's inputs, outputs, opsets and weights",
		Long: `Show what Triton will see of an ONNX model: its inputs (initializers
excluded) and outputs with Triton datatypes and dims (symbolic and unknown dims
as -1), IR version, producer, opsets, weight size and external data files.
The weights are skipped, not read: inspecting a multi-GB model is instant.`,
		Args: argsCheck(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var models []inspected
			for _, p := range args {
				m, err := onnxmodel.Inspect(p)
				if err != nil {
					return err
				}
				models = append(models, inspected{Path: p, Model: m})
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(models)
			}
			for _, m := range models {
				printModel(cmd.OutOrStdout(), m.Path, m.Model)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type inspected struct {
	Path  string
	Model *onnxmodel.Model
}

func printModel(w io.Writer, path string, m *onnxmodel.Model) {
	fmt.Fprintln(w, path)
	var opsets []string
	for _, o := range m.Opsets {
		d := o.Domain
		if d == "" {
			d = "ai.onnx"
		}
		opsets = append(opsets, fmt.Sprintf("%s %d", d, o.Version))
	}
	fmt.Fprintf(w, "  ir_version %d, producer %s %s, opsets %s\n", m.IRVersion, m.ProducerName, m.ProducerVersion, strings.Join(opsets, ", "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, sec := range []struct {
		title string
		vals  []onnxmodel.Value
	}{{"inputs", m.Inputs}, {"outputs", m.Outputs}} {
		fmt.Fprintf(tw, "  %s:\n", sec.title)
		for _, v := range sec.vals {
			typ := v.APIType()
			if v.Kind != onnxmodel.KindTensor {
				typ = string(v.Kind)
			}
			fmt.Fprintf(tw, "    %q\t%s\t%s\t%s\n", v.Name, typ, tensor.FormatShape(v.Dims), strings.Join(nonEmpty(v.DimParams), ","))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "  nodes %d, initializers %d (%s)", m.Nodes, m.Initializers, humanBytes(m.InitializerBytes))
	if len(m.ExternalData) > 0 {
		fmt.Fprintf(w, ", external data: %s", strings.Join(m.ExternalData, ", "))
	}
	fmt.Fprintln(w)
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// humanBytes renders a size with a binary unit: "812 B", "23.4 KiB", "1.2 GiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
