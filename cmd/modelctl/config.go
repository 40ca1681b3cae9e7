package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tritongate/tritongate/internal/onnxmodel"
	"github.com/tritongate/tritongate/internal/pbtxt"
	"github.com/tritongate/tritongate/proto/inference"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check, complete and generate Triton config.pbtxt files",
		RunE:  groupRun,
	}
	cmd.AddCommand(newConfigCheckCmd(), newConfigCompleteCmd(), newConfigGenerateCmd())
	return cmd
}

func newConfigCheckCmd() *cobra.Command {
	var noAutofill bool
	var gpus int
	var defaultMBS int
	cmd := &cobra.Command{
		Use:   "check FILE|DIR...",
		Short: "Validate config.pbtxt files as Triton would",
		Long: `Validate Triton model configurations with Triton's own rules and messages.

Each argument is one of:
  FILE        a config.pbtxt (any name): checked on its own, without model files
  MODEL_DIR   a model directory (config.pbtxt and/or version directories): the
              config is completed and checked against each selected version's
              model.onnx, exactly as Triton does when it loads the model
  REPO_DIR    a model repository: every model directory in it is checked

Problems are printed one per line as "file:line:col: message"; the exit status
is 1 if any config is invalid, 2 on a usage error.`,
		Example: `  modelctl config check models/densenet/config.pbtxt
  modelctl config check --no-autofill /mnt/models
  modelctl config check --gpus 1 models/densenet`,
		Args: argsCheck(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			srv := pbtxt.Server{GPUs: gpus, NoAutofill: noAutofill, DefaultMaxBatchSize: defaultMBS}
			out := cmd.OutOrStdout()
			var checked, invalid int
			for _, arg := range args {
				c, bad, err := checkPath(out, arg, srv)
				if err != nil {
					return err
				}
				checked += c
				invalid += bad
			}
			noun := "configs"
			if checked == 1 {
				noun = "config"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d %s checked, %d invalid\n", checked, noun, invalid)
			if invalid > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noAutofill, "no-autofill", false, "validate as Triton does with --disable-auto-complete-config: inputs and outputs must be written out")
	cmd.Flags().IntVar(&gpus, "gpus", pbtxt.AnyGPUs, "number of GPUs on the target server (-1: unknown, GPU availability not checked)")
	cmd.Flags().IntVar(&defaultMBS, "default-max-batch-size", 4, "Triton's --backend-config=onnxruntime,default-max-batch-size")
	return cmd
}

// checkPath checks one argument; it returns how many configs it checked and
// how many were invalid. Only I/O failures on the argument itself are errors.
func checkPath(out io.Writer, path string, srv pbtxt.Server) (checked, invalid int, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	if !st.IsDir() {
		return 1, boolInt(!checkFile(out, path, srv)), nil
	}
	if isModelDir(path) {
		return 1, boolInt(!checkModelDir(out, path, srv)), nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range entries {
		sub := filepath.Join(path, e.Name())
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && isModelDir(sub) {
			checked++
			invalid += boolInt(!checkModelDir(out, sub, srv))
		}
	}
	if checked == 0 {
		return 0, 0, fmt.Errorf("%s: neither a model directory nor a repository of model directories", path)
	}
	return checked, invalid, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// isModelDir reports whether dir looks like a Triton model directory: it has
// a config.pbtxt or a numeric version subdirectory.
func isModelDir(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, pbtxt.ConfigFile)); err == nil {
		return true
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && len(e.Name()) > 0 && strings.Trim(e.Name(), "0123456789") == "" {
			return true
		}
	}
	return false
}

// printSyntax prints a parse failure; it reports whether err was one.
func printSyntax(out io.Writer, err error) bool {
	var se *pbtxt.SyntaxError
	if errors.As(err, &se) {
		fmt.Fprintln(out, se.Error())
		return true
	}
	return false
}

func checkFile(out io.Writer, path string, srv pbtxt.Server) bool {
	src, err := pbtxt.ParseFile(path)
	if err != nil {
		if !printSyntax(out, err) {
			fmt.Fprintf(out, "%s: %v\n", path, err)
		}
		return false
	}
	isDirConfig := filepath.Base(path) == pbtxt.ConfigFile
	name := pbtxt.ModelNameFrom(filepath.Base(path))
	if isDirConfig {
		abs, _ := filepath.Abs(path)
		name = filepath.Base(filepath.Dir(abs))
	}
	_, ps := pbtxt.CheckConfig(src, name, isDirConfig, srv)
	for _, line := range ps.Strings(src, path) {
		fmt.Fprintln(out, line)
	}
	return len(ps) == 0
}

func checkModelDir(out io.Writer, dir string, srv pbtxt.Server) bool {
	d, err := pbtxt.ReadModelDir(dir)
	if err != nil {
		if !printSyntax(out, err) {
			fmt.Fprintf(out, "%s: %v\n", dir, err)
		}
		return false
	}
	_, ps := pbtxt.Complete(d, srv)
	for _, line := range problemLines(d, ps) {
		fmt.Fprintln(out, line)
	}
	return len(ps) == 0
}

// problemLines renders problems of a model directory against its config file,
// or against the directory when it has none.
func problemLines(d *pbtxt.ModelDir, ps pbtxt.Problems) []string {
	if d.Config != nil {
		return ps.Strings(d.Config, d.Config.File)
	}
	lines := make([]string, len(ps))
	for i, p := range ps {
		v := ""
		if p.Version != "" {
			v = "version " + p.Version + ": "
		}
		lines[i] = fmt.Sprintf("%s: %s%s", d.Path, v, p.Msg)
	}
	return lines
}

func newConfigCompleteCmd() *cobra.Command {
	var gpus, defaultMBS int
	var noAutofill bool
	cmd := &cobra.Command{
		Use:   "complete MODEL_DIR",
		Short: "Print the completed config Triton would report for a model directory",
		Long: `Print the configuration Triton would report (GET /v2/models/<m>/config) after
loading MODEL_DIR: config.pbtxt (if any) auto-completed from the model.onnx of
the latest selected version, normalized, with instance groups placed for a
server with --gpus GPUs. If Triton would refuse the model, the problems are
printed instead and the exit status is 1.`,
		Example: `  modelctl config complete models/densenet
  modelctl config complete --gpus 2 models/densenet > config.pbtxt`,
		Args: argsCheck(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if gpus < 0 {
				return usageError{fmt.Errorf("--gpus must be >= 0, got %d", gpus)}
			}
			d, err := pbtxt.ReadModelDir(args[0])
			if err != nil {
				if printSyntax(cmd.ErrOrStderr(), err) {
					return exitError{1}
				}
				return err
			}
			loaded, ps := pbtxt.Complete(d, pbtxt.Server{GPUs: gpus, NoAutofill: noAutofill, DefaultMaxBatchSize: defaultMBS})
			if len(ps) > 0 {
				for _, line := range problemLines(d, ps) {
					fmt.Fprintln(cmd.ErrOrStderr(), line)
				}
				return exitError{1}
			}
			_, err = cmd.OutOrStdout().Write(pbtxt.Format(loaded.Config))
			return err
		},
	}
	cmd.Flags().IntVar(&gpus, "gpus", 0, "number of GPUs on the server (0: CPU only, instance groups become KIND_CPU)")
	cmd.Flags().IntVar(&defaultMBS, "default-max-batch-size", 4, "Triton's --backend-config=onnxruntime,default-max-batch-size")
	cmd.Flags().BoolVar(&noAutofill, "no-autofill", false, "complete as Triton does with --disable-auto-complete-config")
	return cmd
}

// poolFlags are the instance placement flags shared by generate and repo build.
type poolFlags struct {
	kind         string
	instances    int32
	maxBatchSize int32
	dynamic      bool
}

func (f *poolFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.kind, "kind", "cpu", "where instances run: cpu (KIND_CPU) or gpu (KIND_GPU)")
	cmd.Flags().Int32Var(&f.instances, "instances", 0, "model instances (per GPU for gpu); 0 keeps Triton's default (2 on CPU, 1 per GPU)")
	cmd.Flags().Int32Var(&f.maxBatchSize, "max-batch-size", 0, "max_batch_size; without the flag Triton's auto-complete decides (4 for models with a variable batch dimension)")
	cmd.Flags().BoolVar(&f.dynamic, "dynamic-batching", false, "add a dynamic batcher (without the flag Triton's rule applies: one whenever max_batch_size > 1; --dynamic-batching=false removes it)")
}

func (f *poolFlags) options(cmd *cobra.Command, name string) (pbtxt.GenerateOptions, error) {
	opts := pbtxt.GenerateOptions{Name: name}
	switch f.kind {
	case "cpu":
		opts.Pool.Kind = inference.ModelInstanceGroup_KIND_CPU
	case "gpu":
		opts.Pool.Kind = inference.ModelInstanceGroup_KIND_GPU
	default:
		return opts, usageError{fmt.Errorf("--kind must be cpu or gpu, got %q", f.kind)}
	}
	if f.instances < 0 {
		return opts, usageError{fmt.Errorf("--instances must be >= 0, got %d", f.instances)}
	}
	opts.Pool.Count = f.instances
	if cmd.Flags().Changed("max-batch-size") {
		if f.maxBatchSize < 0 {
			return opts, usageError{fmt.Errorf("--max-batch-size must be >= 0, got %d", f.maxBatchSize)}
		}
		opts.MaxBatchSize = &f.maxBatchSize
	}
	if cmd.Flags().Changed("dynamic-batching") {
		opts.DynamicBatching = &f.dynamic
	}
	return opts, nil
}

func newConfigGenerateCmd() *cobra.Command {
	var name, output string
	var pf poolFlags
	cmd := &cobra.Command{
		Use:   "generate MODEL.onnx --name NAME",
		Short: "Print a full config.pbtxt for an ONNX model",
		Long: `Generate the full config.pbtxt Triton would use for an ONNX model: inputs,
outputs and batching auto-completed from the model as Triton's ONNX Runtime
backend does, the requested instance placement, and Triton's defaults written
out, so that the config loads the same with auto-complete disabled.`,
		Example: `  modelctl config generate densenet.onnx --name densenet
  modelctl config generate model.onnx --name ranker --kind gpu --instances 2 --max-batch-size 32 --dynamic-batching -o config.pbtxt`,
		Args: argsCheck(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" {
				return usageError{fmt.Errorf("--name is required")}
			}
			if err := pbtxt.ValidateModelName(name); err != nil {
				return usageError{err}
			}
			opts, err := pf.options(cmd, name)
			if err != nil {
				return err
			}
			m, err := onnxmodel.Inspect(args[0])
			if err != nil {
				return err
			}
			cfg, ps := pbtxt.Generate(m, opts)
			if len(ps) > 0 {
				for _, p := range ps {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", args[0], p.Msg)
				}
				return exitError{1}
			}
			text := pbtxt.Format(cfg)
			if output == "" || output == "-" {
				_, err = cmd.OutOrStdout().Write(text)
				return err
			}
			return writeFileAtomic(output, text)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "model name (required; the model's directory name in the repository)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file (atomically) instead of stdout")
	pf.register(cmd)
	return cmd
}

// writeFileAtomic writes data to a temporary file next to path, syncs it and
// renames it into place, so readers never see a partial file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return err
	}
	return nil
}
