"""make demo's MLflow client: what an ML engineer does to put an ONNX model in the registry.

  demo_mlflow.py NAME=MODEL.onnx[@ALIAS]...

Each argument is logged in its own run with mlflow.onnx.log_model, registered as a new
version of the registered model NAME, and given ALIAS if one is named. The server is
MLFLOW_TRACKING_URI; the artifacts go through its proxy (mlflow-artifacts:/) to wherever the
server keeps them (S3 in the demo). One line per version on stdout; MLflow's own chatter goes
to stderr.
"""

import contextlib
import sys


def main():
    args = sys.argv[1:]
    if not args or any("=" not in a for a in args):
        sys.exit("usage: demo_mlflow.py NAME=MODEL.onnx[@ALIAS]...")

    import mlflow
    import onnx
    from mlflow import MlflowClient

    mlflow.set_experiment("tritongate-demo")
    client = MlflowClient()
    for arg in args:
        name, rest = arg.split("=", 1)
        path, _, alias = rest.partition("@")
        # MLflow prints links to the run on stdout: to stderr with its logs. The requirements
        # are the ONNX flavor's own: inferring them runs the model in a subprocess (seconds).
        with contextlib.redirect_stdout(sys.stderr), mlflow.start_run(run_name=name) as run:
            info = mlflow.onnx.log_model(onnx.load(path), name="model", registered_model_name=name,
                                         pip_requirements=mlflow.onnx.get_default_pip_requirements())
        version = str(info.registered_model_version)
        if alias:
            client.set_registered_model_alias(name, alias, version)
        mv = client.get_model_version(name, version)
        print("  %s version %s%s: run %s, source %s, files at %s" % (
            name, version, " (alias %s)" % alias if alias else "", run.info.run_id, mv.source,
            client.get_model_version_download_uri(name, version)), flush=True)


if __name__ == "__main__":
    main()
