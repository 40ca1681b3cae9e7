// Package mlflow reads model versions from an MLflow model registry: a
// small REST client for the tracking server (model registry and artifacts
// proxy), and NewSource, which makes one registered model a source.Source.
//
// # Client
//
// The client speaks MLflow's REST API as JSON over HTTP, with the messages
// generated from MLflow's own schema (proto/mlflow: model_registry.proto,
// mlflow_artifacts.proto) encoded by protojson: proto field names
// (snake_case), unknown fields ignored so that newer servers work. It is
// configured like MLflow's Python client (OptionsFromEnv):
//
//	MLFLOW_TRACKING_URI                http(s) URL of the tracking server (REST under /api/2.0/mlflow/)
//	MLFLOW_REGISTRY_URI                a separate model-registry server (default: the tracking server)
//	MLFLOW_TRACKING_TOKEN              bearer token
//	MLFLOW_TRACKING_USERNAME/PASSWORD  basic auth (wins over the token, as in MLflow)
//	MLFLOW_TRACKING_INSECURE_TLS       skip certificate verification
//	MLFLOW_TRACKING_SERVER_CERT_PATH   CA bundle to verify the server with
//	MLFLOW_TRACKING_CLIENT_CERT_PATH   client certificate and key (one PEM file)
//	MLFLOW_HTTP_REQUEST_MAX_RETRIES    retries (default 4)
//	MLFLOW_HTTP_REQUEST_TIMEOUT        seconds to the first byte per attempt (default 120)
//	MLFLOW_S3_ENDPOINT_URL, MLFLOW_S3_IGNORE_TLS, MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE
//	                                   for s3:// artifact URIs (S3Settings)
//
// Connection errors, timeouts, HTTP 408, 429 and 5xx (except 501, 505 and
// MLflow's permanent 503 for a disabled endpoint) are retried with
// exponential backoff and jitter, honouring Retry-After. Errors are
// *APIError values naming the registered model, version or alias and
// quoting MLflow's message; error_code RESOURCE_DOES_NOT_EXIST (or HTTP 404)
// with MLflow's JSON error body unwraps to source.ErrNotFound (an HTML 404
// is a wrong URL, not a missing model; a missing alias is MLflow's 400
// INVALID_PARAMETER_VALUE "... alias X not found." and unwraps to
// ErrNotFound too), PERMISSION_DENIED / UNAUTHENTICATED (or
// HTTP 401, 403) to source.ErrAccessDenied. ENDPOINT_NOT_FOUND (the server
// lacks the API: an MLflow older than 2.3 has no aliases) is not
// ErrNotFound, so that a wrong URL does not look like a deleted model.
//
// Credentials are only sent to the tracking server's origin (scheme, host
// and port). An artifacts proxy on another host (an mlflow-artifacts://host/
// URI, or a proxy URL elsewhere) is called without them.
//
// # Source
//
// NewSource(client, "ranker", objects) lists the versions of the registered
// model "ranker" in status READY (model-versions/search, all pages),
// resolves aliases (registered-models/alias) and describes a version from
// its download URI (model-versions/get-download-uri):
//
//   - s3://bucket/path: through the ObjectStore (the S3 source's store),
//     which lists and fetches the objects;
//   - mlflow-artifacts:/path (or an http(s) URL of the artifacts proxy,
//     .../api/2.0/mlflow-artifacts/artifacts/path): listed recursively and
//     downloaded through the tracking server's artifacts proxy, up to four
//     files at a time, each verified;
//   - runs:/<run>/<path> and models:/<logged model id>: resolved to the
//     run's or logged model's artifact location first, as MLflow's client
//     does;
//   - file: URIs and absolute paths (a server with --no-serve-artifacts
//     and a local ./mlruns): read where the syncer runs.
//
// gs://, wasbs://, dbfs: and the other stores MLflow supports are refused
// with an error saying to proxy them (--serve-artifacts).
//
// Every file path relative to the artifact directory must pass
// source.CheckPath, else the version is refused, naming the path. If the
// directory holds a tritongate-manifest.json, its SHA-256s are used to
// verify the files and it is not returned as a file; it must list exactly
// the files, with their sizes. Nothing in tritongate writes one for MLflow
// versions yet (modelctl register will), and mlflow.onnx.log_model does
// not: without a manifest, proxied files are verified by size only, and
// a zero-byte file (which MLflow's listing sends without file_size) is
// taken as empty.
// Versions that are not READY (PENDING_REGISTRATION, FAILED_REGISTRATION)
// are not listed, and Describe refuses them with an error wrapping
// source.ErrNotFound.
//
// MLflow's ONNX flavor (mlflow.onnx.log_model) stores the model as
// model.onnx in the version's artifact directory, next to MLmodel,
// conda.yaml, python_env.yaml, requirements.txt and the like. Describe
// returns all of them: choosing what Triton needs (model.onnx) is the
// syncer's job, not the source's.
package mlflow
