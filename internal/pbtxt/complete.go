package pbtxt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/tritongate/tritongate/internal/onnxmodel"
	"github.com/tritongate/tritongate/proto/inference"
)

// AnyGPUs as Server.GPUs means the GPU count is unknown: GPU availability is
// not checked and KIND_AUTO groups are left as they are.
const AnyGPUs = -1

// Server describes the Triton server a config is completed and checked for.
type Server struct {
	// GPUs is the number of GPUs (ids 0..GPUs-1), or AnyGPUs.
	GPUs int
	// NoAutofill is Triton's --disable-auto-complete-config: inputs and outputs
	// must be written out and nothing is filled from the model.
	NoAutofill bool
	// DefaultMaxBatchSize is --backend-config=onnxruntime,default-max-batch-size
	// (Triton's default is 4; DefaultServer sets it).
	DefaultMaxBatchSize int
}

// DefaultServer is a CPU-only Triton with default settings.
func DefaultServer() Server { return Server{DefaultMaxBatchSize: 4} }

// ModelDir is a model directory of a Triton repository as the loader sees it.
type ModelDir struct {
	// Path is the directory; its base name is the model's directory name.
	Path string
	// Config is the parsed config.pbtxt, nil if there is none.
	Config *Source
	// Versions are the numeric version subdirectories, ascending.
	Versions []int64
	// Subdirs are all subdirectories, sorted; FirstSubdir lists the entries of
	// Subdirs[0] (name → is a directory), which Triton inspects to pick a backend.
	Subdirs     []string
	FirstSubdir map[string]bool
}

// Name is the directory name.
func (d *ModelDir) Name() string { return filepath.Base(d.Path) }

// ReadModelDir reads a model directory: its config.pbtxt (if any) and layout.
// A config that fails to parse is returned as a *SyntaxError.
func ReadModelDir(path string) (*ModelDir, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	d := &ModelDir{Path: path}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		d.Subdirs = append(d.Subdirs, e.Name())
		if v, ok := versionNumber(e.Name()); ok {
			d.Versions = append(d.Versions, v)
		}
	}
	sort.Strings(d.Subdirs)
	slices.Sort(d.Versions)
	if len(d.Subdirs) > 0 {
		sub, err := os.ReadDir(filepath.Join(path, d.Subdirs[0]))
		if err != nil {
			return nil, err
		}
		d.FirstSubdir = map[string]bool{}
		for _, e := range sub {
			d.FirstSubdir[e.Name()] = e.IsDir()
		}
	}
	src, err := ParseFile(filepath.Join(path, ConfigFile))
	switch {
	case err == nil:
		d.Config = src
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return d, nil
}

// versionNumber parses a version directory name as Triton accepts it: an
// integer without leading zeros, not one of Triton's reserved folder names.
func versionNumber(name string) (int64, bool) {
	if name == "" || (len(name) > 1 && name[0] == '0') {
		return 0, false
	}
	v, err := strconv.ParseInt(name, 10, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	return v, true
}

// Loaded is the result of completing a model directory.
type Loaded struct {
	// Config is the completed config Triton would report (the latest
	// selected version's).
	Config *inference.ModelConfig
	// Versions are the versions the version policy selects, ascending.
	Versions []int64
	// Models holds the ONNX signature read for each selected version (ONNX
	// Runtime models only).
	Models map[int64]*onnxmodel.Model
}

// Complete runs Triton's load pipeline on a model directory (rules document
// §3): backend fields, normalization, validation, instance groups, ONNX
// auto-complete from the model file of each selected version, and the checks
// ONNX Runtime makes against the model. It returns the completed config, or
// the problems that would make Triton fail the load.
func Complete(dir *ModelDir, srv Server) (*Loaded, Problems) {
	p, ps := Prepare(dir, srv)
	if len(ps) > 0 {
		return nil, ps
	}
	if len(p.Versions) == 0 && p.Config.GetPlatform() != PlatformEnsemble {
		return nil, Problems{p.NoVersions()}
	}
	out := &Loaded{Versions: p.Versions, Models: map[int64]*onnxmodel.Model{}}
	for _, v := range p.Versions {
		cfg, m, ps := p.LoadVersion(v)
		if len(ps) > 0 {
			return nil, ps
		}
		out.Config = cfg
		if m != nil {
			out.Models[v] = m
		}
	}
	if out.Config == nil { // an ensemble: nothing per version
		out.Config = p.Config
	}
	return out, nil
}

// Prepared is a model directory through Triton's repository poll: its config
// read, backend fields filled, normalized and validated, and its versions
// selected. Problems found up to here are what Triton reports as a failed
// poll (the model never reaches a version state); problems from LoadVersion
// belong to one version.
type Prepared struct {
	Dir    *ModelDir
	Server Server
	// Config is the normalized config before instance groups and backend
	// auto-complete.
	Config *inference.ModelConfig
	// Versions are the versions the version policy selects, ascending.
	Versions []int64
}

// Prepare runs the poll stage of Triton's load pipeline (rules §3 steps 1-4).
func Prepare(dir *ModelDir, srv Server) (*Prepared, Problems) {
	var cfg *inference.ModelConfig
	switch {
	case dir.Config != nil:
		cfg = proto.Clone(dir.Config.Config).(*inference.ModelConfig)
	case srv.NoAutofill:
		return nil, Problems{{Code: codes.InvalidArgument, Msg: "failed to open text file for read " + filepath.Join(dir.Path, ConfigFile) + ": No such file or directory"}}
	default:
		cfg = &inference.ModelConfig{}
	}
	if p, ok := autoCompleteBackendFields(cfg, dir); !ok {
		return nil, Problems{p}
	}
	normalize(cfg)
	ps := validateModelConfig(cfg)
	if srv.NoAutofill {
		ps = append(ps, validateIO(cfg)...)
	}
	if cfg.GetName() != "" && cfg.GetName() != dir.Name() {
		ps = append(ps, invalid("name", "unexpected directory name '%s' for model '%s', directory name must equal model name", dir.Name(), cfg.GetName()))
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return &Prepared{Dir: dir, Server: srv, Config: cfg, Versions: selectVersions(cfg, dir.Versions)}, nil
}

// NoVersions is the problem of a version policy that selects nothing.
func (p *Prepared) NoVersions() Problem {
	return invalid("version_policy", "at least one version must be available under the version policy of model '%s'", p.Config.GetName())
}

// LoadVersion completes the config for one version as Triton's backend model
// for it would (rules §3 steps 5-11): instance groups, ONNX auto-complete from
// that version's model file and the checks against it. Problems carry the
// version.
func (p *Prepared) LoadVersion(v int64) (*inference.ModelConfig, *onnxmodel.Model, Problems) {
	cfg := proto.Clone(p.Config).(*inference.ModelConfig)
	m, ps := p.loadVersion(cfg, v)
	for i := range ps {
		ps[i].Version = strconv.FormatInt(v, 10)
	}
	if len(ps) > 0 {
		return nil, nil, ps
	}
	return cfg, m, nil
}

func (p *Prepared) loadVersion(cfg *inference.ModelConfig, v int64) (*onnxmodel.Model, Problems) {
	normalizeInstanceGroups(cfg, p.Server.GPUs)
	if ps := validateInstanceGroups(cfg, p.Server.GPUs); len(ps) > 0 {
		return nil, ps
	}
	if cfg.GetBackend() != BackendONNX {
		// Other backends fill their own configs; what is written is checked.
		return nil, append(validateModelConfig(cfg), validateIO(cfg)...)
	}
	return loadVersion(cfg, p.Dir, v, p.Server)
}

// ModelFile is the path Triton's ONNX Runtime backend opens for a version.
func ModelFile(dir string, cfg *inference.ModelConfig, version int64) string {
	name := cfg.GetDefaultModelFilename()
	if name == "" {
		name = FilenameONNX
	}
	p := filepath.Join(dir, strconv.FormatInt(version, 10), name)
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		p = filepath.Join(p, FilenameONNX)
	}
	return p
}

func loadVersion(cfg *inference.ModelConfig, dir *ModelDir, version int64, srv Server) (*onnxmodel.Model, Problems) {
	path := ModelFile(dir.Path, cfg, version)
	m, err := onnxmodel.Inspect(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Problems{{Code: codes.Unavailable, Msg: fmt.Sprintf("unable to find '%s' for model instance '%s'", path, cfg.GetName())}}
	}
	if err != nil {
		return nil, Problems{{Code: codes.Internal, Msg: fmt.Sprintf("onnx runtime error: unable to load model '%s': %v", cfg.GetName(), err)}}
	}
	if ps := CompleteFromModel(cfg, m, srv); len(ps) > 0 {
		return nil, ps
	}
	return m, nil
}

// CompleteFromModel auto-completes cfg (already through backend fields,
// normalization and instance groups) from an ONNX signature, re-validates it,
// and checks it against the model as ONNX Runtime's backend does at instance
// load (rules D.18-D.23).
func CompleteFromModel(cfg *inference.ModelConfig, m *onnxmodel.Model, srv Server) Problems {
	if ps := checkTensorKinds(m); len(ps) > 0 {
		return ps
	}
	if !srv.NoAutofill {
		if ps := autofillONNX(cfg, m, srv.DefaultMaxBatchSize); len(ps) > 0 {
			return ps
		}
		normalize(cfg)
		if ps := append(validateModelConfig(cfg), validateIO(cfg)...); len(ps) > 0 {
			return ps
		}
	}
	return checkAgainstModel(cfg, m)
}

// CheckConfig validates a config file on its own, without its model directory:
// the rules that need no model files (backend fields from what is written,
// normalization, whole-config and per-tensor rules, instance groups). When
// isModelDirConfig is set, the file is <model>/config.pbtxt and the directory
// name must match the model name.
func CheckConfig(src *Source, modelName string, isModelDirConfig bool, srv Server) (*inference.ModelConfig, Problems) {
	cfg := proto.Clone(src.Config).(*inference.ModelConfig)
	if cfg.GetName() == "" {
		cfg.Name = modelName
	}
	undetermined := cfg.GetBackend() == "" && cfg.GetPlatform() == ""
	if !undetermined {
		if p, ok := autoCompleteBackendFields(cfg, &ModelDir{Path: modelName}); !ok {
			return nil, Problems{p}
		}
	}
	normalize(cfg)
	var ps Problems
	for _, p := range validateModelConfig(cfg) {
		// Without the model files the backend of a config naming neither a
		// platform nor a backend is unknown (Triton picks it from the files).
		if undetermined && (p.Path == "" || p.Path == "platform") {
			continue
		}
		ps = append(ps, p)
	}
	ps = append(ps, validateIO(cfg)...)
	if isModelDirConfig && src.Config.GetName() != "" && src.Config.GetName() != modelName {
		ps = append(ps, invalid("name", "unexpected directory name '%s' for model '%s', directory name must equal model name", modelName, src.Config.GetName()))
	}
	normalizeInstanceGroups(cfg, srv.GPUs)
	ps = append(ps, validateInstanceGroups(cfg, srv.GPUs)...)
	return cfg, ps
}

// autoCompleteBackendFields is Triton's AutoCompleteBackendFields (rules §3
// step 2, restricted to the backends a config can name).
func autoCompleteBackendFields(cfg *inference.ModelConfig, dir *ModelDir) (Problem, bool) {
	if cfg.Name == "" {
		cfg.Name = dir.Name()
	}
	has := func(entry string, wantDir bool) bool {
		isDir, ok := dir.FirstSubdir[entry]
		return ok && isDir == wantDir
	}
	hasAny := func(entry string) bool { _, ok := dir.FirstSubdir[entry]; return ok }
	hasVersion := len(dir.Subdirs) > 0
	nothing := cfg.Platform == "" && cfg.DefaultModelFilename == ""

	// TensorFlow.
	if cfg.Platform == "" && (cfg.Backend == "" || cfg.Backend == BackendTensorFlow) {
		switch {
		case cfg.DefaultModelFilename == FilenameTFSavedModel:
			cfg.Platform = PlatformTFSavedModel
		case cfg.DefaultModelFilename == FilenameTFGraphDef:
			cfg.Platform = PlatformTFGraphDef
		case cfg.DefaultModelFilename == "" && hasVersion && has(FilenameTFSavedModel, true):
			cfg.Platform = PlatformTFSavedModel
		case cfg.DefaultModelFilename == "" && hasVersion && has(FilenameTFGraphDef, false):
			cfg.Platform = PlatformTFGraphDef
		}
	}
	if cfg.Platform == PlatformTFSavedModel || cfg.Platform == PlatformTFGraphDef {
		if cfg.Backend == "" {
			cfg.Backend = BackendTensorFlow
		}
		if cfg.DefaultModelFilename == "" {
			cfg.DefaultModelFilename = map[string]string{PlatformTFSavedModel: FilenameTFSavedModel, PlatformTFGraphDef: FilenameTFGraphDef}[cfg.Platform]
		}
		return Problem{}, true
	}
	// TensorRT.
	if cfg.Backend == "" && (cfg.Platform == PlatformTensorRT || cfg.DefaultModelFilename == FilenameTensorRT || (nothing && hasVersion && has(FilenameTensorRT, false))) {
		cfg.Backend = BackendTensorRT
	}
	if cfg.Backend == BackendTensorRT {
		if cfg.Platform == "" {
			cfg.Platform = PlatformTensorRT
		}
		if cfg.DefaultModelFilename == "" {
			cfg.DefaultModelFilename = FilenameTensorRT
		}
		return Problem{}, true
	}
	// ONNX Runtime: model.onnx may be a file or a directory.
	if cfg.Backend == "" && (cfg.Platform == PlatformONNX || cfg.DefaultModelFilename == FilenameONNX || (nothing && hasVersion && hasAny(FilenameONNX))) {
		cfg.Backend = BackendONNX
	}
	if cfg.Backend == BackendONNX {
		if cfg.Platform == "" {
			cfg.Platform = PlatformONNX
		}
		if cfg.DefaultModelFilename == "" {
			cfg.DefaultModelFilename = FilenameONNX
		}
		return Problem{}, true
	}
	// OpenVINO.
	if cfg.Backend == "" && (cfg.DefaultModelFilename == FilenameOpenVINO || (nothing && hasVersion && hasAny(FilenameOpenVINO))) {
		cfg.Backend = BackendOpenVINO
	}
	if cfg.Backend == BackendOpenVINO {
		if cfg.DefaultModelFilename == "" {
			cfg.DefaultModelFilename = FilenameOpenVINO
		}
		return Problem{}, true
	}
	// PyTorch.
	if cfg.Backend == "" && (cfg.Platform == PlatformPyTorch || cfg.DefaultModelFilename == FilenamePyTorch || (nothing && hasVersion && has(FilenamePyTorch, false))) {
		cfg.Backend = BackendPyTorch
	}
	if cfg.Backend == BackendPyTorch {
		if cfg.Platform == "" {
			cfg.Platform = PlatformPyTorch
		}
		if cfg.DefaultModelFilename == "" {
			cfg.DefaultModelFilename = FilenamePyTorch
		}
		return Problem{}, true
	}
	// Python.
	if cfg.Backend == "" && (cfg.DefaultModelFilename == FilenamePython || (nothing && hasVersion && hasAny(FilenamePython))) {
		cfg.Backend = BackendPython
	}
	if cfg.Backend == BackendPython {
		if cfg.DefaultModelFilename == "" {
			cfg.DefaultModelFilename = FilenamePython
		}
		return Problem{}, true
	}
	// Custom backend named by the model name: "model.<backend>".
	if cfg.Backend == "" && cfg.Platform == "" && cfg.DefaultModelFilename == "" {
		name := dir.Name()
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return invalid("backend", "Invalid model name: Could not determine backend for model '%s' with no backend in model configuration. Expected model name of the form 'model.<backend_name>'.", name), false
		}
		cfg.Backend = name[i+1:]
		cfg.DefaultModelFilename = "model." + cfg.Backend
	}
	return Problem{}, true
}

// normalize is NormalizeModelConfig (rules §3 step 3).
func normalize(cfg *inference.ModelConfig) {
	if cfg.VersionPolicy == nil {
		cfg.VersionPolicy = &inference.ModelVersionPolicy{PolicyChoice: &inference.ModelVersionPolicy_Latest_{Latest: &inference.ModelVersionPolicy_Latest{NumVersions: 1}}}
	}
	if db := cfg.GetDynamicBatching(); db != nil && len(db.PreferredBatchSize) == 0 && cfg.MaxBatchSize > 0 {
		db.PreferredBatchSize = []int32{cfg.MaxBatchSize}
	}
	if sb := cfg.GetSequenceBatching(); sb != nil {
		if sb.MaxSequenceIdleMicroseconds == 0 {
			sb.MaxSequenceIdleMicroseconds = defaultSequenceIdleUS
		}
		if o := sb.GetOldest(); o != nil && len(o.PreferredBatchSize) == 0 && cfg.MaxBatchSize > 0 {
			o.PreferredBatchSize = []int32{cfg.MaxBatchSize}
		}
	}
	if cfg.Platform != PlatformEnsemble {
		if cfg.Optimization == nil {
			cfg.Optimization = &inference.ModelOptimizationPolicy{}
		}
		if cfg.Optimization.InputPinnedMemory == nil {
			cfg.Optimization.InputPinnedMemory = &inference.ModelOptimizationPolicy_PinnedMemoryBuffer{Enable: true}
		}
		if cfg.Optimization.OutputPinnedMemory == nil {
			cfg.Optimization.OutputPinnedMemory = &inference.ModelOptimizationPolicy_PinnedMemoryBuffer{Enable: true}
		}
	}
}

// normalizeInstanceGroups is NormalizeInstanceGroup with SetDefaultInstanceCount
// (rules §3 step 5) for a server with gpus GPUs.
func normalizeInstanceGroups(cfg *inference.ModelConfig, gpus int) {
	if cfg.Platform == PlatformEnsemble {
		return
	}
	if len(cfg.InstanceGroup) == 0 {
		cfg.InstanceGroup = []*inference.ModelInstanceGroup{{Name: cfg.Name, Kind: inference.ModelInstanceGroup_KIND_AUTO}}
	}
	for i, g := range cfg.InstanceGroup {
		if g.Name == "" {
			g.Name = cfg.Name + "_" + strconv.Itoa(i)
		}
		if g.Kind == inference.ModelInstanceGroup_KIND_AUTO && gpus != AnyGPUs {
			g.Kind = inference.ModelInstanceGroup_KIND_CPU
			if gpus > 0 && allBelow(g.Gpus, gpus) {
				g.Kind = inference.ModelInstanceGroup_KIND_GPU
			}
		}
		if g.Count < 1 {
			g.Count = 1
			if g.Kind == inference.ModelInstanceGroup_KIND_CPU && (cfg.Backend == BackendONNX || cfg.Backend == BackendTensorFlow) {
				g.Count = 2
			}
		}
		if g.Kind == inference.ModelInstanceGroup_KIND_GPU && len(g.Gpus) == 0 && gpus > 0 {
			for id := range gpus {
				g.Gpus = append(g.Gpus, int32(id))
			}
		}
	}
}

func allBelow(ids []int32, n int) bool {
	for _, id := range ids {
		if id < 0 || int(id) >= n {
			return false
		}
	}
	return true
}

// selectVersions applies the version policy to the available versions.
func selectVersions(cfg *inference.ModelConfig, available []int64) []int64 {
	vp := cfg.GetVersionPolicy()
	switch {
	case vp.GetAll() != nil:
		return slices.Clone(available)
	case vp.GetSpecific() != nil:
		var out []int64
		for _, v := range vp.GetSpecific().GetVersions() {
			if slices.Contains(available, v) && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		slices.Sort(out)
		return out
	default:
		n := int(vp.GetLatest().GetNumVersions())
		if n < 1 {
			n = 1
		}
		if n > len(available) {
			n = len(available)
		}
		return slices.Clone(available[len(available)-n:])
	}
}

// SelectVersions applies cfg's version policy to the available versions.
func SelectVersions(cfg *inference.ModelConfig, available []int64) []int64 {
	return selectVersions(cfg, available)
}
