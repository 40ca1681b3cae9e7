// Package mlflowtest is an in-process MLflow tracking server for tests: the
// model registry endpoints tritongate uses and an artifacts proxy over an
// in-memory map, speaking MLflow's REST JSON with the messages generated
// from MLflow's schema (proto/mlflow). Serve it with httptest.NewServer:
//
//	s := mlflowtest.New()
//	s.CreateModel("ranker")
//	v, _ := s.CreateVersion("ranker", "mlflow-artifacts:/1/abc/artifacts/model")
//	s.SetAlias("ranker", "champion", v)
//	s.PutArtifact("1/abc/artifacts/model/model.onnx", onnxBytes)
//	ts := httptest.NewServer(s)
//
// Errors are MLflow's JSON ({"error_code": "...", "message": "..."}) with
// MLflow's HTTP status; a failed authentication is the plain-text 401 of
// MLflow's basic-auth app. FailNext injects failures; Requests and Calls
// count what was asked.
package mlflowtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	mlflowpb "github.com/tritongate/tritongate/proto/mlflow"
	"github.com/tritongate/tritongate/proto/mlflow/artifacts"
	"github.com/tritongate/tritongate/proto/mlflow/databricks"
)

// DefaultPageSize is the most model versions a search page holds unless
// SetPageSize says otherwise.
const DefaultPageSize = 1000

// maxSearchResults is MLflow's limit on max_results for model version search.
const maxSearchResults = 200000

// Error is an MLflow API error, as returned by the Go API and written as
// {"error_code": ..., "message": ...} with Status.
type Error struct {
	Status  int
	Code    databricks.ErrorCode
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

func newError(code databricks.ErrorCode, format string, args ...any) *Error {
	return &Error{Status: statusOf(code), Code: code, Message: fmt.Sprintf(format, args...)}
}

// statusOf is MLflow's mapping of error codes to HTTP statuses.
func statusOf(code databricks.ErrorCode) int {
	switch code {
	case databricks.ErrorCode_RESOURCE_DOES_NOT_EXIST, databricks.ErrorCode_ENDPOINT_NOT_FOUND, databricks.ErrorCode_NOT_FOUND:
		return http.StatusNotFound
	case databricks.ErrorCode_PERMISSION_DENIED:
		return http.StatusForbidden
	case databricks.ErrorCode_UNAUTHENTICATED, databricks.ErrorCode_CUSTOMER_UNAUTHORIZED:
		return http.StatusUnauthorized
	case databricks.ErrorCode_REQUEST_LIMIT_EXCEEDED:
		return http.StatusTooManyRequests
	case databricks.ErrorCode_TEMPORARILY_UNAVAILABLE:
		return http.StatusServiceUnavailable
	case databricks.ErrorCode_INTERNAL_ERROR, databricks.ErrorCode_INVALID_STATE:
		return http.StatusInternalServerError
	case databricks.ErrorCode_NOT_IMPLEMENTED:
		return http.StatusNotImplemented
	}
	return http.StatusBadRequest
}

// codeOf is the error code an injected failure with status carries.
func codeOf(status int) databricks.ErrorCode {
	switch status {
	case http.StatusNotFound:
		return databricks.ErrorCode_RESOURCE_DOES_NOT_EXIST
	case http.StatusForbidden:
		return databricks.ErrorCode_PERMISSION_DENIED
	case http.StatusUnauthorized:
		return databricks.ErrorCode_UNAUTHENTICATED
	case http.StatusTooManyRequests:
		return databricks.ErrorCode_REQUEST_LIMIT_EXCEEDED
	case http.StatusServiceUnavailable:
		return databricks.ErrorCode_TEMPORARILY_UNAVAILABLE
	case http.StatusNotImplemented:
		return databricks.ErrorCode_NOT_IMPLEMENTED
	}
	if status >= 500 {
		return databricks.ErrorCode_INTERNAL_ERROR
	}
	return databricks.ErrorCode_BAD_REQUEST
}

// Server is the fake tracking server. Its methods are safe for concurrent
// use, also while it serves.
type Server struct {
	mu          sync.Mutex
	models      map[string]*registeredModel
	artifacts   map[string][]byte
	pageSize    int
	token       string
	user, pass  string
	faults      []int
	requests    int
	calls       map[string]int
	clock       int64
	routes      map[route]handler
	runs        map[string]string // run id -> artifact root
	logged      map[string]string // logged model id -> artifact location
	noArtifacts bool
}

type route struct{ method, ep string }

type handler func(*http.Request) (proto.Message, *Error)

type registeredModel struct {
	name     string
	created  int64
	updated  int64
	versions map[int64]*mlflowpb.ModelVersion
	last     int64
	aliases  map[string]int64
}

// New returns an empty server.
func New() *Server {
	s := &Server{
		models:    map[string]*registeredModel{},
		artifacts: map[string][]byte{},
		pageSize:  DefaultPageSize,
		calls:     map[string]int{},
		clock:     1700000000000,
		runs:      map[string]string{},
		logged:    map[string]string{},
	}
	s.routes = map[route]handler{
		{http.MethodPost, "mlflow/registered-models/create"}:       s.handleCreateModel,
		{http.MethodGet, "mlflow/registered-models/get"}:           s.handleGetModel,
		{http.MethodPost, "mlflow/model-versions/create"}:          s.handleCreateVersion,
		{http.MethodGet, "mlflow/model-versions/get"}:              s.handleGetVersion,
		{http.MethodGet, "mlflow/model-versions/search"}:           s.handleSearch,
		{http.MethodGet, "mlflow/model-versions/get-download-uri"}: s.handleDownloadURI,
		{http.MethodGet, "mlflow/registered-models/alias"}:         s.handleGetAlias,
		{http.MethodPost, "mlflow/registered-models/alias"}:        s.handleSetAlias,
		{http.MethodDelete, "mlflow/registered-models/alias"}:      s.handleDeleteAlias,
		{http.MethodGet, "mlflow-artifacts/artifacts"}:             s.handleList,
	}
	return s
}

// CreateRun records a run whose artifact root is artifactURI
// ("mlflow-artifacts:/1/<run id>/artifacts") and returns its id. A model
// version whose source is runs:/<id>/model then resolves below it, as in
// MLflow.
func (s *Server) CreateRun(artifactURI string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := fmt.Sprintf("%032x", s.tick())
	s.runs[id] = artifactURI
	return id
}

// CreateLoggedModel records an MLflow 3 logged model (what
// mlflow.<flavor>.log_model makes) stored at artifactURI and returns its id
// ("m-..."). A version registered from it has source models:/<id>, and
// get-download-uri answers artifactURI, as MLflow does.
func (s *Server) CreateLoggedModel(artifactURI string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := fmt.Sprintf("m-%032x", s.tick())
	s.logged[id] = artifactURI
	return id
}

// NoServeArtifacts makes the server behave as `mlflow server
// --no-serve-artifacts`: the artifacts proxy answers every call with the
// plain-text 503 of a disabled endpoint.
func (s *Server) NoServeArtifacts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noArtifacts = true
}

// tick returns a new timestamp (ms); deterministic. Called with mu held.
func (s *Server) tick() int64 {
	s.clock += 1000
	return s.clock
}

// CreateModel registers a model.
func (s *Server) CreateModel(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.createModel(name)
	return nilIfNone(err)
}

func (s *Server) createModel(name string) (*registeredModel, *Error) {
	if name == "" {
		return nil, missing("name")
	}
	if _, ok := s.models[name]; ok {
		return nil, newError(databricks.ErrorCode_RESOURCE_ALREADY_EXISTS, "Registered Model (name=%s) already exists.", name)
	}
	now := s.tick()
	m := &registeredModel{name: name, created: now, updated: now, versions: map[int64]*mlflowpb.ModelVersion{}, aliases: map[string]int64{}}
	s.models[name] = m
	return m, nil
}

// CreateVersion adds a version in status READY whose artifacts are at
// source (an s3:// or mlflow-artifacts:/ URI), and returns its number.
func (s *Server) CreateVersion(model, source string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mv, err := s.createVersion(model, source, "")
	if err != nil {
		return 0, err
	}
	n, _ := strconv.ParseInt(mv.GetVersion(), 10, 64)
	return n, nil
}

func (s *Server) createVersion(model, source, runID string) (*mlflowpb.ModelVersion, *Error) {
	if model == "" {
		return nil, missing("name")
	}
	if source == "" {
		return nil, missing("source")
	}
	m, err := s.model(model)
	if err != nil {
		return nil, err
	}
	m.last++
	now := s.tick()
	m.updated = now
	mv := &mlflowpb.ModelVersion{
		Name:                 proto.String(model),
		Version:              proto.String(strconv.FormatInt(m.last, 10)),
		CreationTimestamp:    proto.Int64(now),
		LastUpdatedTimestamp: proto.Int64(now),
		CurrentStage:         proto.String("None"),
		Source:               proto.String(source),
		Status:               mlflowpb.ModelVersionStatus_READY.Enum(),
	}
	if runID != "" {
		mv.RunId = proto.String(runID)
	}
	m.versions[m.last] = mv
	return mv, nil
}

// SetVersionStatus changes a version's status (PENDING_REGISTRATION,
// FAILED_REGISTRATION, READY), with an optional status message.
func (s *Server) SetVersionStatus(model string, version int64, status mlflowpb.ModelVersionStatus, message string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mv, err := s.version(model, strconv.FormatInt(version, 10))
	if err != nil {
		return err
	}
	mv.Status = status.Enum()
	mv.StatusMessage = nil
	if message != "" {
		mv.StatusMessage = proto.String(message)
	}
	mv.LastUpdatedTimestamp = proto.Int64(s.tick())
	return nil
}

// SetAlias points alias at a version of model.
func (s *Server) SetAlias(model, alias string, version int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return nilIfNone(s.setAlias(model, alias, strconv.FormatInt(version, 10)))
}

var versionLike = regexp.MustCompile(`^[vV]\d+$`)

func (s *Server) setAlias(model, alias, version string) *Error {
	switch {
	case model == "":
		return missing("name")
	case alias == "":
		return missing("alias")
	case version == "":
		return missing("version")
	case strings.EqualFold(alias, "latest") || versionLike.MatchString(alias):
		return newError(databricks.ErrorCode_INVALID_PARAMETER_VALUE, "'%s' alias name (case insensitive) is reserved.", alias)
	}
	mv, err := s.version(model, version)
	if err != nil {
		return err
	}
	n, _ := strconv.ParseInt(mv.GetVersion(), 10, 64)
	s.models[model].aliases[alias] = n
	return nil
}

// DeleteAlias removes an alias (no error if it does not exist, as MLflow).
func (s *Server) DeleteAlias(model, alias string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.model(model)
	if err != nil {
		return err
	}
	delete(m.aliases, alias)
	return nil
}

// PutArtifact stores a file of the artifacts proxy; path is relative to
// the proxy's root ("1/abc/artifacts/model/model.onnx", the path of an
// mlflow-artifacts:/ URI). It is not checked, so tests can store hostile
// names.
func (s *Server) PutArtifact(path string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.artifacts[path] = bytes.Clone(data)
}

// DeleteArtifact removes a file of the artifacts proxy.
func (s *Server) DeleteArtifact(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.artifacts, path)
}

// SetPageSize sets the most model versions a search page holds (n > 0),
// whatever max_results asks, as a real server caps it.
func (s *Server) SetPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = max(n, 1)
}

// RequireToken makes every request need "Authorization: Bearer <token>"
// (or the basic auth of RequireBasicAuth, if set).
func (s *Server) RequireToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// RequireBasicAuth makes every request need these basic auth credentials
// (or the token of RequireToken, if set).
func (s *Server) RequireBasicAuth(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.pass = user, password
}

// FailNext answers the next k requests, whatever they ask, with status
// and an MLflow error (503: TEMPORARILY_UNAVAILABLE, 500: INTERNAL_ERROR,
// 429: REQUEST_LIMIT_EXCEEDED, 404: RESOURCE_DOES_NOT_EXIST, 403:
// PERMISSION_DENIED, ...). Calls add up.
func (s *Server) FailNext(k, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range k {
		s.faults = append(s.faults, status)
	}
}

// Requests is the number of requests received, failed ones included.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Calls is the number of requests received for one path below /api/2.0/:
// "mlflow/model-versions/search", "mlflow-artifacts/artifacts" (listings),
// "mlflow-artifacts/artifacts/1/abc/artifacts/model/model.onnx" (one file).
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

func nilIfNone(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

func missing(param string) *Error {
	return newError(databricks.ErrorCode_INVALID_PARAMETER_VALUE, "Missing value for required parameter '%s'. See the API docs for more information about request parameters.", param)
}

// model and version look things up; called with mu held.
func (s *Server) model(name string) (*registeredModel, *Error) {
	m, ok := s.models[name]
	if !ok {
		return nil, newError(databricks.ErrorCode_RESOURCE_DOES_NOT_EXIST, "Registered Model with name=%s not found", name)
	}
	return m, nil
}

func (s *Server) version(model, version string) (*mlflowpb.ModelVersion, *Error) {
	m, err := s.model(model)
	if err != nil {
		return nil, err
	}
	n, perr := strconv.ParseInt(version, 10, 64)
	if perr != nil {
		return nil, newError(databricks.ErrorCode_INVALID_PARAMETER_VALUE, "Parameter 'version' must be an integer, got '%s'.", version)
	}
	mv, ok := m.versions[n]
	if !ok {
		return nil, newError(databricks.ErrorCode_RESOURCE_DOES_NOT_EXIST, "Model Version (name=%s, version=%s) not found", model, version)
	}
	return mv, nil
}

// view is a copy of mv with its aliases filled in; called with mu held.
func (s *Server) view(mv *mlflowpb.ModelVersion) *mlflowpb.ModelVersion {
	out := proto.Clone(mv).(*mlflowpb.ModelVersion)
	m := s.models[mv.GetName()]
	for a, n := range m.aliases {
		if strconv.FormatInt(n, 10) == mv.GetVersion() {
			out.Aliases = append(out.Aliases, a)
		}
	}
	sort.Strings(out.Aliases)
	return out
}

const apiPrefix = "/api/2.0/"

// ServeHTTP answers one REST call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ep, isAPI := strings.CutPrefix(r.URL.Path, apiPrefix)
	s.mu.Lock()
	s.requests++
	if isAPI {
		s.calls[ep]++
	}
	if len(s.faults) > 0 {
		st := s.faults[0]
		s.faults = s.faults[1:]
		s.mu.Unlock()
		if st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "0")
		}
		writeError(w, &Error{Status: st, Code: codeOf(st), Message: fmt.Sprintf("injected failure (HTTP %d)", st)})
		return
	}
	ok := s.authorized(r)
	noArtifacts := s.noArtifacts
	s.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="mlflow"`)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "You are not authenticated. Please see https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow on how to authenticate.")
		return
	}
	if !isAPI {
		notFoundPage(w)
		return
	}
	if noArtifacts && (ep == "mlflow-artifacts/artifacts" || strings.HasPrefix(ep, "mlflow-artifacts/artifacts/")) {
		route := "/api/2.0/mlflow-artifacts/artifacts"
		if ep != "mlflow-artifacts/artifacts" {
			route += "/<path:artifact_path>"
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "Endpoint: %s disabled due to the mlflow server running with `--no-serve-artifacts`. To enable artifacts server functionality, run `mlflow server` with `--serve-artifacts`", route)
		return
	}
	if rest, ok := strings.CutPrefix(ep, "mlflow-artifacts/artifacts/"); ok {
		s.serveArtifact(w, r, rest)
		return
	}
	if ep == "mlflow/runs/get" && r.Method == http.MethodGet {
		s.serveRun(w, r)
		return
	}
	if id, ok := strings.CutPrefix(ep, "mlflow/logged-models/"); ok && r.Method == http.MethodGet && !strings.Contains(id, "/") {
		s.serveLoggedModel(w, id)
		return
	}
	h, ok := s.routes[route{r.Method, ep}]
	if !ok {
		for rt := range s.routes {
			if rt.ep == ep {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.WriteHeader(http.StatusMethodNotAllowed)
				io.WriteString(w, "<!doctype html>\n<html lang=en>\n<title>405 Method Not Allowed</title>\n<h1>Method Not Allowed</h1>\n<p>The method is not allowed for the requested URL.</p>\n")
				return
			}
		}
		notFoundPage(w)
		return
	}
	resp, herr := h(r)
	if herr != nil {
		writeError(w, herr)
		return
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
	var out bytes.Buffer
	if err == nil {
		// protojson varies its spacing on purpose; answer compact JSON, as MLflow does.
		err = json.Compact(&out, b)
	}
	if err != nil {
		writeError(w, newError(databricks.ErrorCode_INTERNAL_ERROR, "%v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out.Bytes())
}

// notFoundPage is what MLflow (Flask) answers for a route it does not
// have: an HTML page, not MLflow's JSON.
func notFoundPage(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	io.WriteString(w, "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n")
}

func (s *Server) authorized(r *http.Request) bool {
	if s.token == "" && s.user == "" {
		return true
	}
	if s.token != "" && r.Header.Get("Authorization") == "Bearer "+s.token {
		return true
	}
	if s.user != "" {
		if u, p, ok := r.BasicAuth(); ok && u == s.user && p == s.pass {
			return true
		}
	}
	return false
}

func writeError(w http.ResponseWriter, e *Error) {
	b, _ := json.Marshal(map[string]string{"error_code": e.Code.String(), "message": e.Message})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	w.Write(b)
}

// maxBody bounds request bodies (JSON and uploads).
const maxBody = 64 << 20

// decode fills msg from the request as MLflow does: the query string for
// GET, the JSON body otherwise (the query string if the body is empty).
func decode(r *http.Request, msg proto.Message) *Error {
	var body []byte
	if r.Method != http.MethodGet && r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err != nil {
			return newError(databricks.ErrorCode_BAD_REQUEST, "reading the request: %v", err)
		}
		body = bytes.TrimSpace(b)
	}
	if len(body) == 0 {
		obj := map[string]any{}
		fields := msg.ProtoReflect().Descriptor().Fields()
		for k, vs := range r.URL.Query() {
			if fd := fields.ByName(protoreflect.Name(k)); (fd != nil && fd.IsList()) || len(vs) > 1 {
				obj[k] = vs
			} else {
				obj[k] = vs[0]
			}
		}
		body, _ = json.Marshal(obj)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, msg); err != nil {
		return newError(databricks.ErrorCode_MALFORMED_REQUEST, "Malformed request: %v", err)
	}
	return nil
}

func (s *Server) handleCreateModel(r *http.Request) (proto.Message, *Error) {
	var req mlflowpb.CreateRegisteredModel
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.createModel(req.GetName())
	if err != nil {
		return nil, err
	}
	return &mlflowpb.CreateRegisteredModel_Response{RegisteredModel: s.registeredModel(m)}, nil
}

func (s *Server) registeredModel(m *registeredModel) *mlflowpb.RegisteredModel {
	rm := &mlflowpb.RegisteredModel{
		Name:                 proto.String(m.name),
		CreationTimestamp:    proto.Int64(m.created),
		LastUpdatedTimestamp: proto.Int64(m.updated),
	}
	names := make([]string, 0, len(m.aliases))
	for a := range m.aliases {
		names = append(names, a)
	}
	sort.Strings(names)
	for _, a := range names {
		rm.Aliases = append(rm.Aliases, &mlflowpb.RegisteredModelAlias{Alias: proto.String(a), Version: proto.String(strconv.FormatInt(m.aliases[a], 10))})
	}
	return rm
}

func (s *Server) handleGetModel(r *http.Request) (proto.Message, *Error) {
	var req mlflowpb.GetRegisteredModel
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.GetName() == "" {
		return nil, missing("name")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.model(req.GetName())
	if err != nil {
		return nil, err
	}
	return &mlflowpb.GetRegisteredModel_Response{RegisteredModel: s.registeredModel(m)}, nil
}

func (s *Server) handleCreateVersion(r *http.Request) (proto.Message, *Error) {
	var req mlflowpb.CreateModelVersion
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mv, err := s.createVersion(req.GetName(), req.GetSource(), req.GetRunId())
	if err != nil {
		return nil, err
	}
	return &mlflowpb.CreateModelVersion_Response{ModelVersion: s.view(mv)}, nil
}

func (s *Server) handleGetVersion(r *http.Request) (proto.Message, *Error) {
	var req mlflowpb.GetModelVersion
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := required(req.GetName(), req.GetVersion()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mv, err := s.version(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	return &mlflowpb.GetModelVersion_Response{ModelVersion: s.view(mv)}, nil
}

func required(name, version string) *Error {
	switch {
	case name == "":
		return missing("name")
	case version == "":
		return missing("version")
	}
	return nil
}

func (s *Server) handleDownloadURI(r *http.Request) (proto.Message, *Error) {
	var req mlflowpb.GetModelVersionDownloadUri
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := required(req.GetName(), req.GetVersion()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mv, err := s.version(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	uri := mv.GetSource()
	if loc, ok := s.logged[strings.TrimPrefix(uri, "models:/")]; ok {
		uri = loc // MLflow 3 answers a logged model's location
	}
	return &mlflowpb.GetModelVersionDownloadUri_Response{ArtifactUri: proto.String(uri)}, nil
}

// serveRun answers runs/get with the run's artifact root (the rest of
// MLflow's Run message is left out; its schema is not vendored).
func (s *Server) serveRun(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("run_id")
	if id == "" {
		writeError(w, missing("run_id"))
		return
	}
	s.mu.Lock()
	root, ok := s.runs[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, newError(databricks.ErrorCode_RESOURCE_DOES_NOT_EXIST, "Run with id=%s not found", id))
		return
	}
	b, _ := json.Marshal(map[string]any{"run": map[string]any{"info": map[string]any{
		"run_id": id, "run_uuid": id, "experiment_id": "0", "artifact_uri": root, "status": "FINISHED", "lifecycle_stage": "active"}}})
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (s *Server) serveLoggedModel(w http.ResponseWriter, id string) {
	s.mu.Lock()
	loc, ok := s.logged[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, newError(databricks.ErrorCode_RESOURCE_DOES_NOT_EXIST, "Logged model with ID '%s' not found", id))
		return
	}
	b, _ := json.Marshal(map[string]any{"model": map[string]any{"info": map[string]any{
		"model_id": id, "experiment_id": "0", "name": "model", "artifact_uri": loc, "status": "LOGGED_MODEL_READY"}}})
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// pageToken is MLflow's page token: base64 of {"offset": n}.
type pageToken struct {
	Offset int `json:"offset"`
}

func (s *Server) handleSearch(r *http.Request) (proto.Message, *Error) {
	var req mlflowpb.SearchModelVersions
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	name, all, ferr := ParseFilter(req.GetFilter())
	if ferr != nil {
		return nil, newError(databricks.ErrorCode_INVALID_PARAMETER_VALUE, "Invalid filter '%s': %v", req.GetFilter(), ferr)
	}
	maxResults := req.GetMaxResults() // 200000 when absent, the proto default
	if maxResults <= 0 || maxResults > maxSearchResults {
		return nil, newError(databricks.ErrorCode_INVALID_PARAMETER_VALUE, "Invalid value for max_results. It must be at most %d, but got value %d", maxSearchResults, maxResults)
	}
	offset := 0
	if t := req.GetPageToken(); t != "" {
		var pt pageToken
		b, err := base64.StdEncoding.DecodeString(t)
		if err == nil {
			err = json.Unmarshal(b, &pt)
		}
		if err != nil || pt.Offset < 0 {
			return nil, newError(databricks.ErrorCode_INVALID_PARAMETER_VALUE, "Invalid page token, could not base64-decode or parse it")
		}
		offset = pt.Offset
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var mvs []*mlflowpb.ModelVersion
	for _, m := range s.models {
		if !all && m.name != name {
			continue
		}
		for _, mv := range m.versions {
			mvs = append(mvs, mv)
		}
	}
	order, oerr := parseOrderBy(req.GetOrderBy())
	if oerr != nil {
		return nil, oerr
	}
	sort.SliceStable(mvs, func(i, j int) bool { return less(order, mvs[i], mvs[j]) })
	page := int(min(maxResults, int64(s.pageSize)))
	resp := &mlflowpb.SearchModelVersions_Response{}
	if offset < len(mvs) {
		end := min(offset+page, len(mvs))
		for _, mv := range mvs[offset:end] {
			resp.ModelVersions = append(resp.ModelVersions, s.view(mv))
		}
		if end < len(mvs) {
			b, _ := json.Marshal(pageToken{Offset: end})
			resp.NextPageToken = proto.String(base64.StdEncoding.EncodeToString(b))
		}
	}
	return resp, nil
}

// orderKey is one order_by term.
type orderKey struct {
	column string
	desc   bool
}

// parseOrderBy reads order_by terms as MLflow does ("version_number ASC",
// "last_updated_timestamp DESC"; ASC when not said); none gives MLflow's
// default: last_updated_timestamp DESC, name ASC, version_number DESC.
func parseOrderBy(terms []string) ([]orderKey, *Error) {
	if len(terms) == 0 {
		return []orderKey{{"last_updated_timestamp", true}, {"name", false}, {"version_number", true}}, nil
	}
	var out []orderKey
	for _, t := range terms {
		f := strings.Fields(t)
		if len(f) == 0 || len(f) > 2 {
			return nil, newError(databricks.ErrorCode_INVALID_PARAMETER_VALUE, "Invalid order_by clause '%s'.", t)
		}
		k := orderKey{column: f[0]}
		if len(f) == 2 {
			switch strings.ToUpper(f[1]) {
			case "ASC":
			case "DESC":
				k.desc = true
			default:
				return nil, newError(databricks.ErrorCode_INVALID_PARAMETER_VALUE, "Invalid order_by clause '%s'.", t)
			}
		}
		switch k.column {
		case "name", "version_number", "creation_timestamp", "last_updated_timestamp":
		default:
			return nil, newError(databricks.ErrorCode_INVALID_PARAMETER_VALUE, "Invalid order by key '%s' specified.", f[0])
		}
		out = append(out, k)
	}
	// MLflow breaks ties by name and version number.
	return append(out, orderKey{"name", false}, orderKey{"version_number", true}), nil
}

func less(order []orderKey, a, b *mlflowpb.ModelVersion) bool {
	for _, k := range order {
		var c int
		switch k.column {
		case "name":
			c = strings.Compare(a.GetName(), b.GetName())
		case "version_number":
			x, _ := strconv.ParseInt(a.GetVersion(), 10, 64)
			y, _ := strconv.ParseInt(b.GetVersion(), 10, 64)
			c = cmpInt(x, y)
		case "creation_timestamp":
			c = cmpInt(a.GetCreationTimestamp(), b.GetCreationTimestamp())
		case "last_updated_timestamp":
			c = cmpInt(a.GetLastUpdatedTimestamp(), b.GetLastUpdatedTimestamp())
		}
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c < 0
		}
	}
	return false
}

func cmpInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// TouchVersion updates a version's last_updated_timestamp (as editing its
// description does in MLflow): it moves in the default search order.
func (s *Server) TouchVersion(model string, version int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mv, err := s.version(model, strconv.FormatInt(version, 10))
	if err != nil {
		return err
	}
	mv.LastUpdatedTimestamp = proto.Int64(s.tick())
	return nil
}

// ParseFilter reads the search filters the server understands: "" (every
// version), name='X' and name="X" (spaces allowed around name and =). The
// quoted name has no escapes and cannot contain its own quote.
func ParseFilter(filter string) (name string, all bool, err error) {
	f := strings.TrimSpace(filter)
	if f == "" {
		return "", true, nil
	}
	rest, ok := strings.CutPrefix(f, "name")
	if !ok {
		return "", false, fmt.Errorf("only name='...' filters are supported")
	}
	rest = strings.TrimLeft(rest, " \t")
	rest, ok = strings.CutPrefix(rest, "=")
	if !ok {
		return "", false, fmt.Errorf("expected '=' after name")
	}
	rest = strings.TrimLeft(rest, " \t")
	if rest == "" || (rest[0] != '\'' && rest[0] != '"') {
		return "", false, fmt.Errorf("expected a quoted name after '='")
	}
	q := rest[0]
	end := strings.IndexByte(rest[1:], q)
	if end < 0 {
		return "", false, fmt.Errorf("unterminated string")
	}
	name, tail := rest[1:1+end], rest[2+end:]
	if strings.TrimSpace(tail) != "" {
		return "", false, fmt.Errorf("unexpected %q after the name", tail)
	}
	if name == "" {
		return "", false, fmt.Errorf("empty name")
	}
	return name, false, nil
}

func (s *Server) handleGetAlias(r *http.Request) (proto.Message, *Error) {
	var req mlflowpb.GetModelVersionByAlias
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	switch {
	case req.GetName() == "":
		return nil, missing("name")
	case req.GetAlias() == "":
		return nil, missing("alias")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.model(req.GetName())
	if err != nil {
		return nil, err
	}
	n, ok := m.aliases[req.GetAlias()]
	if !ok {
		// MLflow: 400 INVALID_PARAMETER_VALUE, not 404.
		return nil, newError(databricks.ErrorCode_INVALID_PARAMETER_VALUE, "Registered model alias %s not found.", req.GetAlias())
	}
	return &mlflowpb.GetModelVersionByAlias_Response{ModelVersion: s.view(m.versions[n])}, nil
}

func (s *Server) handleSetAlias(r *http.Request) (proto.Message, *Error) {
	var req mlflowpb.SetRegisteredModelAlias
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.setAlias(req.GetName(), req.GetAlias(), req.GetVersion()); err != nil {
		return nil, err
	}
	return &mlflowpb.SetRegisteredModelAlias_Response{}, nil
}

func (s *Server) handleDeleteAlias(r *http.Request) (proto.Message, *Error) {
	var req mlflowpb.DeleteRegisteredModelAlias
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	switch {
	case req.GetName() == "":
		return nil, missing("name")
	case req.GetAlias() == "":
		return nil, missing("alias")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.model(req.GetName())
	if err != nil {
		return nil, err
	}
	delete(m.aliases, req.GetAlias())
	return &mlflowpb.DeleteRegisteredModelAlias_Response{}, nil
}

// safePath is MLflow's check on artifact paths given by clients.
func safePath(p string) bool {
	if strings.HasPrefix(p, "/") || strings.Contains(p, `\`) {
		return false
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return false
		}
	}
	return true
}

func invalidPath(p string) *Error {
	return newError(databricks.ErrorCode_INVALID_PARAMETER_VALUE, "Invalid path: %s", p)
}

// handleList lists the direct children of a directory: base names, with
// file_size for files. A missing directory lists as empty, as MLflow's
// local artifact repository does.
func (s *Server) handleList(r *http.Request) (proto.Message, *Error) {
	var req artifacts.ListArtifacts
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	dir := strings.Trim(req.GetPath(), "/")
	if !safePath(dir) {
		return nil, invalidPath(req.GetPath())
	}
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dirs := map[string]bool{}
	files := map[string]int64{}
	for p, data := range s.artifacts {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok || rest == "" {
			continue
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			dirs[rest[:i]] = true
		} else {
			files[rest] = int64(len(data))
		}
	}
	names := make([]string, 0, len(dirs)+len(files))
	for n := range dirs {
		names = append(names, n)
	}
	for n := range files {
		if !dirs[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	resp := &artifacts.ListArtifacts_Response{}
	for _, n := range names {
		fi := &artifacts.FileInfo{Path: proto.String(n), IsDir: proto.Bool(dirs[n])}
		if !dirs[n] && files[n] != 0 {
			// MLflow's JSON leaves out a size of 0 (an empty __init__.py).
			fi.FileSize = proto.Int64(files[n])
		}
		resp.Files = append(resp.Files, fi)
	}
	return resp, nil
}

// serveArtifact downloads (GET) or uploads (PUT) one file.
func (s *Server) serveArtifact(w http.ResponseWriter, r *http.Request, p string) {
	if !safePath(p) {
		writeError(w, invalidPath(p))
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		data, ok := s.artifacts[p]
		s.mu.Unlock()
		if !ok {
			writeError(w, newError(databricks.ErrorCode_RESOURCE_DOES_NOT_EXIST, "Artifact %s not found", p))
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	case http.MethodPut:
		data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(data) > maxBody {
			writeError(w, newError(databricks.ErrorCode_BAD_REQUEST, "upload too large or unreadable"))
			return
		}
		s.PutArtifact(p, data)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	default:
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: databricks.ErrorCode_BAD_REQUEST, Message: fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)})
	}
}
