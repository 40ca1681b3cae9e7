"""What an ML engineer does with MLflow, one subcommand each, for the interop suite.

Talks to the server named by MLFLOW_TRACKING_URI with MLflow's own client (credentials
from MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN, S3 from the AWS_* and
MLFLOW_S3_ENDPOINT_URL variables). Prints one JSON object per line.

  log-onnx NAME MODEL.onnx [--alias A] [--code]  mlflow.onnx.log_model, registered as NAME
  log-run NAME FILE... [--runs-uri] [--alias A]  log_artifacts into a run, then
                                                 create_model_version(source=<run artifacts>/model)
                                                 or source=runs:/<run>/model
  register-source NAME URI [--alias A]           create_model_version(source=URI)
  register-many NAME URI COUNT                   COUNT versions of the same source
  update NAME VERSION DESCRIPTION                update_model_version (its last update moves)
  alias NAME ALIAS VERSION | delete-alias NAME ALIAS
  delete-version NAME VERSION | delete-model NAME
  set-status DB NAME VERSION STATUS [MESSAGE]    PENDING_REGISTRATION / FAILED_REGISTRATION,
                                                 written in the SQLite store (MLflow's own
                                                 server sets them only for async registries)
  create-user USER PASSWORD                      basic-auth app (as admin)
  grant-model USER NAME PERMISSION
  grant-experiment USER EXPERIMENT_ID PERMISSION
  experiment-of NAME VERSION                     the experiment id of a version's run
"""

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile

import mlflow
from mlflow import MlflowClient


def out(**kw):
    print(json.dumps(kw), flush=True)


def maybe_alias(client, name, version, alias):
    if alias:
        client.set_registered_model_alias(name, alias, version)


def cmd_log_onnx(a):
    import onnx

    model = onnx.load(a.model)
    with mlflow.start_run() as run:
        kwargs = {}
        if a.code:
            # code_paths puts these files under code/ in the model's artifacts: an empty
            # __init__.py and names Triton never reads but that are unusual on disk.
            d = tempfile.mkdtemp()
            pkg = os.path.join(d, "featurizer")
            os.makedirs(pkg)
            open(os.path.join(pkg, "__init__.py"), "w").close()
            with open(os.path.join(pkg, "my transform.py"), "w") as f:
                f.write("X = 1\n")
            with open(os.path.join(pkg, ".hidden"), "w") as f:
                f.write("x\n")
            kwargs["code_paths"] = [pkg]
        # The flavour's default requirements, given: MLflow's inference of them
        # takes seconds and changes nothing the syncer reads.
        kwargs["pip_requirements"] = mlflow.onnx.get_default_pip_requirements()
        info = mlflow.onnx.log_model(model, name="model", registered_model_name=a.name, **kwargs)
    client = MlflowClient()
    version = info.registered_model_version
    maybe_alias(client, a.name, version, a.alias)
    out(version=str(version), run_id=run.info.run_id, model_id=info.model_id,
        source=client.get_model_version(a.name, version).source,
        download_uri=client.get_model_version_download_uri(a.name, version))


def cmd_log_run(a):
    client = MlflowClient()
    try:
        client.create_registered_model(a.name)
    except mlflow.exceptions.MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    d = tempfile.mkdtemp()
    for f in a.files:
        shutil.copy(f, d)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(d, artifact_path="model")
    if a.runs_uri:
        source = "runs:/%s/model" % run.info.run_id
    else:
        source = run.info.artifact_uri + "/model"
    mv = client.create_model_version(a.name, source, run_id=run.info.run_id)
    maybe_alias(client, a.name, mv.version, a.alias)
    out(version=mv.version, run_id=run.info.run_id, source=mv.source,
        download_uri=client.get_model_version_download_uri(a.name, mv.version),
        experiment_id=run.info.experiment_id)


def cmd_register_source(a):
    client = MlflowClient()
    try:
        client.create_registered_model(a.name)
    except mlflow.exceptions.MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    mv = client.create_model_version(a.name, a.uri)
    maybe_alias(client, a.name, mv.version, a.alias)
    out(version=mv.version, source=mv.source,
        download_uri=client.get_model_version_download_uri(a.name, mv.version))


def cmd_register_many(a):
    client = MlflowClient()
    try:
        client.create_registered_model(a.name)
    except mlflow.exceptions.MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    versions = [client.create_model_version(a.name, a.uri).version for _ in range(a.count)]
    out(versions=[str(v) for v in versions])


def cmd_update(a):
    MlflowClient().update_model_version(a.name, a.version, description=a.description)
    out(ok=True)


def cmd_alias(a):
    MlflowClient().set_registered_model_alias(a.name, a.alias, a.version)
    out(ok=True)


def cmd_delete_alias(a):
    MlflowClient().delete_registered_model_alias(a.name, a.alias)
    out(ok=True)


def cmd_delete_version(a):
    MlflowClient().delete_model_version(a.name, a.version)
    out(ok=True)


def cmd_delete_model(a):
    MlflowClient().delete_registered_model(a.name)
    out(ok=True)


def cmd_set_status(a):
    db = sqlite3.connect(a.db)
    n = db.execute(
        "UPDATE model_versions SET status = ?, status_message = ? WHERE name = ? AND version = ?",
        (a.status, a.message, a.name, int(a.version)),
    ).rowcount
    db.commit()
    if n != 1:
        sys.exit("no version %s of %s in %s" % (a.version, a.name, a.db))
    out(ok=True)


def auth_client():
    from mlflow.server import get_app_client

    return get_app_client("basic-auth", tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


def cmd_create_user(a):
    auth_client().create_user(username=a.user, password=a.password)
    out(ok=True)


def grant(user, resource_type, resource_id, permission):
    c = auth_client()
    if hasattr(c, "grant_user_permission"):  # MLflow >= 3.10: one call for every resource type
        c.grant_user_permission(user, resource_type, resource_id, permission)
    elif resource_type == "registered_model":
        c.create_registered_model_permission(name=resource_id, username=user, permission=permission)
    else:
        c.create_experiment_permission(experiment_id=resource_id, username=user, permission=permission)


def cmd_grant_model(a):
    grant(a.user, "registered_model", a.name, a.permission)
    out(ok=True)


def cmd_grant_experiment(a):
    grant(a.user, "experiment", a.experiment, a.permission)
    out(ok=True)


def cmd_experiment_of(a):
    client = MlflowClient()
    mv = client.get_model_version(a.name, a.version)
    out(experiment_id=client.get_run(mv.run_id).info.experiment_id)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("log-onnx")
    s.add_argument("name")
    s.add_argument("model")
    s.add_argument("--alias")
    s.add_argument("--code", action="store_true")
    s.set_defaults(f=cmd_log_onnx)
    s = sub.add_parser("log-run")
    s.add_argument("name")
    s.add_argument("files", nargs="+")
    s.add_argument("--runs-uri", action="store_true")
    s.add_argument("--alias")
    s.set_defaults(f=cmd_log_run)
    s = sub.add_parser("register-source")
    s.add_argument("name")
    s.add_argument("uri")
    s.add_argument("--alias")
    s.set_defaults(f=cmd_register_source)
    s = sub.add_parser("register-many")
    s.add_argument("name")
    s.add_argument("uri")
    s.add_argument("count", type=int)
    s.set_defaults(f=cmd_register_many)
    s = sub.add_parser("update")
    s.add_argument("name")
    s.add_argument("version")
    s.add_argument("description")
    s.set_defaults(f=cmd_update)
    s = sub.add_parser("alias")
    s.add_argument("name")
    s.add_argument("alias")
    s.add_argument("version")
    s.set_defaults(f=cmd_alias)
    s = sub.add_parser("delete-alias")
    s.add_argument("name")
    s.add_argument("alias")
    s.set_defaults(f=cmd_delete_alias)
    s = sub.add_parser("delete-version")
    s.add_argument("name")
    s.add_argument("version")
    s.set_defaults(f=cmd_delete_version)
    s = sub.add_parser("delete-model")
    s.add_argument("name")
    s.set_defaults(f=cmd_delete_model)
    s = sub.add_parser("set-status")
    s.add_argument("db")
    s.add_argument("name")
    s.add_argument("version")
    s.add_argument("status")
    s.add_argument("message", nargs="?", default="")
    s.set_defaults(f=cmd_set_status)
    s = sub.add_parser("create-user")
    s.add_argument("user")
    s.add_argument("password")
    s.set_defaults(f=cmd_create_user)
    s = sub.add_parser("grant-model")
    s.add_argument("user")
    s.add_argument("name")
    s.add_argument("permission")
    s.set_defaults(f=cmd_grant_model)
    s = sub.add_parser("grant-experiment")
    s.add_argument("user")
    s.add_argument("experiment")
    s.add_argument("permission")
    s.set_defaults(f=cmd_grant_experiment)
    s = sub.add_parser("experiment-of")
    s.add_argument("name")
    s.add_argument("version")
    s.set_defaults(f=cmd_experiment_of)
    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
