package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tritongate/tritongate/internal/onnxmodel"
	"github.com/tritongate/tritongate/internal/pbtxt"
	"github.com/tritongate/tritongate/internal/tensor"
	"github.com/tritongate/tritongate/proto/inference"
)

func newRepoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Build Triton model repositories",
		RunE:  groupRun,
	}
	cmd.AddCommand(newRepoBuildCmd())
	return cmd
}

func newRepoBuildCmd() *cobra.Command {
	var out string
	var force, strict bool
	var pf poolFlags
	cmd := &cobra.Command{
		Use:   "build SRC... --out DIR",
		Short: "Turn ONNX files or model directories into a Triton model repository",
		Long: `Build a Triton model repository: DIR/<name>/config.pbtxt and
DIR/<name>/<version>/model.onnx for each source.

A source is one of:
  MODEL.onnx       becomes model <file name without extension>, version 1,
                   with a generated config
  DIR/model.onnx   (a directory holding model.onnx) becomes model <DIR>, version 1
  MODEL_DIR        a Triton model directory (config.pbtxt and/or version
                   directories): copied with its versions; a missing config is
                   generated from the latest version
  NAME=SOURCE      any of the above under the model name NAME

The placement flags (--kind, --instances, --max-batch-size, --dynamic-batching)
shape generated configs, and override an existing config when given.

Every model is staged next to DIR, completed and checked against its model
files exactly as Triton would load it, and only then moved into DIR with a
rename. A model that fails (not a valid ONNX model, a config Triton would
refuse, a name already in DIR without --force) is reported with its reason
and left out; the others are built, as Triton loads the good models of a
repository and reports the bad one. The exit status is 1 when any failed.
With --strict, one failure builds nothing and DIR stays as it was. An
existing model is replaced only with --force.`,
		Example: `  modelctl repo build testdata/onnx/models/*.onnx --out /tmp/models
  modelctl repo build densenet=exports/densenet.onnx models/ranker --out /mnt/models --kind gpu
  modelctl repo build exports/*.onnx --out /mnt/models --strict   # all or nothing`,
		Args: argsCheck(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{fmt.Errorf("--out is required")}
			}
			return buildRepo(cmd, args, out, force, strict, &pf)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "repository directory to write (created if missing)")
	cmd.Flags().BoolVar(&force, "force", false, "replace models that already exist in the repository")
	cmd.Flags().BoolVar(&strict, "strict", false, "build nothing unless every model is valid")
	pf.register(cmd)
	return cmd
}

// source is one model to build.
type source struct {
	name     string
	arg      string
	file     string  // a lone .onnx file (version 1), or
	modelDir string  // a Triton model directory
	versions []int64 // of modelDir
}

func resolveSource(arg string) (source, error) {
	s := source{arg: arg}
	path := arg
	if i := strings.IndexByte(arg, '='); i > 0 {
		s.name, path = arg[:i], arg[i+1:]
	}
	st, err := os.Stat(path)
	if err != nil {
		return s, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return s, err
	}
	switch {
	case !st.IsDir():
		s.file = path
		if s.name == "" {
			s.name = pbtxt.ModelNameFrom(filepath.Base(path))
		}
	case isModelDir(path):
		s.modelDir = path
		if s.name == "" {
			s.name = filepath.Base(abs)
		}
		d, err := pbtxt.ReadModelDir(path)
		if err != nil {
			return s, err
		}
		s.versions = d.Versions
		if len(s.versions) == 0 {
			return s, fmt.Errorf("%s: model directory has no version directories", path)
		}
	default:
		f := filepath.Join(path, pbtxt.FilenameONNX)
		if _, err := os.Stat(f); err != nil {
			return s, fmt.Errorf("%s: no model.onnx, config.pbtxt or version directory in it", path)
		}
		s.file = f
		if s.name == "" {
			s.name = filepath.Base(abs)
		}
	}
	if err := pbtxt.ValidateModelName(s.name); err != nil {
		return s, fmt.Errorf("%s: %w", arg, err)
	}
	return s, nil
}

func buildRepo(cmd *cobra.Command, args []string, out string, force, strict bool, pf *poolFlags) error {
	var srcs []source
	var failed []error
	seen := map[string]string{}
	for _, a := range args {
		s, err := resolveSource(a)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		if prev, dup := seen[s.name]; dup {
			return usageError{fmt.Errorf("%s and %s both build model %q: rename one with NAME=SOURCE", prev, a, s.name)}
		}
		seen[s.name] = a
		srcs = append(srcs, s)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	// Stage beside the repository: same filesystem, but not a directory Triton
	// would take for a model.
	staging, err := os.MkdirTemp(filepath.Dir(absOut), "."+filepath.Base(absOut)+".staging-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)

	override := cmd.Flags().Changed("kind") || cmd.Flags().Changed("instances") || cmd.Flags().Changed("max-batch-size") || cmd.Flags().Changed("dynamic-batching")
	type staged struct {
		src    source
		loaded *pbtxt.Loaded
	}
	var good []staged
	for _, s := range srcs {
		if _, err := os.Stat(filepath.Join(out, s.name)); err == nil && !force {
			failed = append(failed, fmt.Errorf("%s: model %q already exists in %s (use --force to replace it)", s.arg, s.name, out))
			continue
		}
		opts, err := pf.options(cmd, s.name)
		if err != nil {
			return err
		}
		loaded, err := stageModel(filepath.Join(staging, s.name), s, opts, override)
		if err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", s.arg, err))
			continue
		}
		good = append(good, staged{s, loaded})
	}
	if len(failed) > 0 && (strict || len(good) == 0) {
		if len(failed) == 1 {
			return failed[0]
		}
		for _, err := range failed {
			fmt.Fprintf(cmd.ErrOrStderr(), "modelctl: %v\n", err)
		}
		return fmt.Errorf("%d of %d models failed: nothing built", len(failed), len(args))
	}
	// Publish: every model left was checked; now move each into place.
	for _, g := range good {
		if err := publish(staging, filepath.Join(staging, g.src.name), filepath.Join(absOut, g.src.name)); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), describe(filepath.Join(out, g.src.name), g.loaded))
	}
	if err := syncDir(absOut); err != nil {
		return err
	}
	if len(failed) > 0 {
		for _, err := range failed {
			fmt.Fprintf(cmd.ErrOrStderr(), "modelctl: %v\n", err)
		}
		return fmt.Errorf("%d of %d models failed; %d built", len(failed), len(args), len(good))
	}
	return nil
}

// stageModel writes one model directory at dst and checks it as Triton would
// load it.
func stageModel(dst string, s source, opts pbtxt.GenerateOptions, override bool) (*pbtxt.Loaded, error) {
	var cfg *inference.ModelConfig
	switch {
	case s.file != "":
		if err := copyFile(s.file, filepath.Join(dst, "1", pbtxt.FilenameONNX)); err != nil {
			return nil, err
		}
	default:
		for _, v := range s.versions {
			vs := strconv.FormatInt(v, 10)
			if err := copyTree(filepath.Join(s.modelDir, vs), filepath.Join(dst, vs)); err != nil {
				return nil, err
			}
		}
		src, err := pbtxt.ParseFile(filepath.Join(s.modelDir, pbtxt.ConfigFile))
		switch {
		case err == nil:
			cfg = src.Config
			cfg.Name = s.name // a renamed model keeps its config
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	if cfg == nil {
		versions := s.versions
		if len(versions) == 0 {
			versions = []int64{1}
		}
		latest := strconv.FormatInt(versions[len(versions)-1], 10)
		m, err := onnxmodel.Inspect(filepath.Join(dst, latest, pbtxt.FilenameONNX))
		if err != nil {
			// The error names the staged copy: name the source's file instead.
			if inner := errors.Unwrap(err); inner != nil && errors.Is(err, onnxmodel.ErrNotONNX) {
				if s.file != "" {
					return nil, inner
				}
				return nil, fmt.Errorf("%s: %w", filepath.Join(latest, pbtxt.FilenameONNX), inner)
			}
			return nil, err
		}
		var ps pbtxt.Problems
		if cfg, ps = pbtxt.Generate(m, opts); len(ps) > 0 {
			return nil, ps
		}
	} else if override {
		var err error
		if cfg, err = opts.Pool.Apply(cfg); err != nil {
			return nil, err
		}
		if opts.MaxBatchSize != nil {
			cfg.MaxBatchSize = *opts.MaxBatchSize
		}
		if opts.DynamicBatching != nil && !*opts.DynamicBatching && cfg.GetDynamicBatching() != nil {
			cfg.SchedulingChoice = nil
		} else if opts.DynamicBatching != nil && *opts.DynamicBatching && cfg.GetDynamicBatching() == nil {
			cfg.SchedulingChoice = &inference.ModelConfig_DynamicBatching{DynamicBatching: &inference.ModelDynamicBatching{}}
		}
	}
	if err := writeFileAtomic(filepath.Join(dst, pbtxt.ConfigFile), pbtxt.Format(cfg)); err != nil {
		return nil, err
	}
	d, err := pbtxt.ReadModelDir(dst)
	if err != nil {
		return nil, err
	}
	srv := pbtxt.DefaultServer()
	srv.GPUs = pbtxt.AnyGPUs
	loaded, ps := pbtxt.Complete(d, srv)
	if len(ps) > 0 {
		return nil, ps
	}
	return loaded, nil
}

// publish moves a staged model directory to dst, replacing what is there:
// the old directory is first renamed into the staging area, so dst is never
// missing a complete model for longer than between two renames.
func publish(staging, staged, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		old := filepath.Join(staging, ".replaced-"+filepath.Base(dst))
		if err := os.Rename(dst, old); err != nil {
			return err
		}
	}
	return os.Rename(staged, dst)
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(p, target)
		default:
			return fmt.Errorf("%s: not a regular file or directory", p)
		}
	})
}

// copyFile copies src to dst (creating dst's directory) and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err = io.Copy(out, in); err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// describe summarizes a built model in one line.
func describe(dir string, l *pbtxt.Loaded) string {
	cfg := l.Config
	var b strings.Builder
	vs := make([]string, len(l.Versions))
	for i, v := range l.Versions {
		vs[i] = strconv.FormatInt(v, 10)
	}
	fmt.Fprintf(&b, "wrote %s: version %s, max_batch_size %d", dir, strings.Join(vs, ","), cfg.GetMaxBatchSize())
	if cfg.GetDynamicBatching() != nil {
		b.WriteString(" (dynamic batching)")
	}
	io := func(kind string, names []string, types []inference.DataType, dims [][]int64) {
		parts := make([]string, len(names))
		for i := range names {
			parts[i] = fmt.Sprintf("%q %s %s", names[i], tensor.FromConfig(types[i]), tensor.FormatShape(dims[i]))
		}
		fmt.Fprintf(&b, "; %s %s", kind, strings.Join(parts, ", "))
	}
	var n []string
	var t []inference.DataType
	var d [][]int64
	for _, in := range cfg.GetInput() {
		n, t, d = append(n, in.GetName()), append(t, in.GetDataType()), append(d, in.GetDims())
	}
	io("inputs", n, t, d)
	n, t, d = nil, nil, nil
	for _, out := range cfg.GetOutput() {
		n, t, d = append(n, out.GetName()), append(t, out.GetDataType()), append(d, out.GetDims())
	}
	io("outputs", n, t, d)
	var groups []string
	for _, g := range cfg.GetInstanceGroup() {
		groups = append(groups, fmt.Sprintf("%s x%d", g.GetKind(), g.GetCount()))
	}
	slices.Sort(groups)
	fmt.Fprintf(&b, "; instances %s", strings.Join(groups, ", "))
	return b.String()
}
