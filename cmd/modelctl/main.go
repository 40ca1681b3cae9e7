// Command modelctl is tritongate's model promotion CLI. This release has the
// config and repository commands: validate, complete and generate Triton
// config.pbtxt files, inspect ONNX models and build a model repository.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries an exit code for failures that were already reported
// (for example, problems printed by config check).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes modelctl with args and returns the process exit code: 0 on
// success, 1 when a command found problems or failed, 2 on a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(stderr, "modelctl: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// usageError is a bad command line.
type usageError struct{ error }

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "modelctl",
		Short: "Manage ONNX models served by Triton: configs, repositories, promotion",
		Long: `modelctl manages ONNX models served by NVIDIA Triton Inference Server.

It validates and generates Triton config.pbtxt files exactly as Triton's ONNX
Runtime backend reads them (same rules, same error messages), inspects ONNX
models, and builds Triton model repositories.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newConfigCmd(), newRepoCmd(), newInspectCmd(), newInferCmd())
	return root
}

// groupRun makes a command that only groups subcommands reject stray
// arguments (cobra would print help and succeed).
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
	}
	return cmd.Help()
}

// argsCheck wraps a cobra argument check to report a usage error.
func argsCheck(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{fmt.Errorf("%s: %w", cmd.CommandPath(), err)}
		}
		return nil
	}
}
