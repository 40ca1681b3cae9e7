"""Every call of Triton's Python gRPC client against one server, for the interop suite.

Talks to --url with tritonclient.grpc.InferenceServerClient (and, for requests the client
cannot build, with the generated stub tritonclient.grpc.service_pb2_grpc). Prints one JSON
object per call, in a fixed order:

  {"call": NAME, "ok": BOOL, "code": "OK" | gRPC code name, "message": STR, "result": ...}

"result" is normalized so that two servers answering the same way print the same line:
durations and timestamps in statistics become booleans (set or not), protobuf messages
become dicts (field names as in the .proto), tensors become {name, datatype, shape, data}.

The repository it is told about (each model must be loaded when the script starts):

  --simple NAME       add/sub INT32 model in the form of Triton's "simple" example:
                      INPUT0, INPUT1 [-1,16] -> OUTPUT0 = sum, OUTPUT1 = difference
  --simple-versions   its ready versions (comma separated, e.g. 1,2)
  --string NAME       BYTES identity: INPUT0 [-1,-1] -> OUTPUT0
  --typed NAME        identity with one input per typed contents field: INPUT_<DT> [n]
                      -> OUTPUT_<DT> for DT in --typed-dtypes (no batching)
  --lifecycle NAME    FP32 identity INPUT0 [-1,4] -> OUTPUT0 that the lifecycle calls
                      reload with a config override, unload and load again (the server
                      must run with --model-control-mode=explicit)
  --onnx NAME         an ONNX model with float inputs (inputs generated from its metadata)

--control-url HOST:PORT also sends each load/unload to that server (printed as
"control.<call>"), so that a server behind a proxy that does not forward them goes through
the same lifecycle; --settle SECONDS is then waited after each, for the proxy's health checks.
"""

import argparse
import json
import queue
import sys
import threading
import time

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from google.protobuf import json_format
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from grpc_errors import code_of, message_of

TIMEOUT = 30  # seconds, every call


def emit(call, ok, code="OK", message="", result=None):
    print(json.dumps({"call": call, "ok": ok, "code": code, "message": message, "result": result},
                     sort_keys=True), flush=True)


def run(call, fn, norm=lambda r: r):
    """Runs fn, prints its outcome; returns the raw result (None on failure)."""
    try:
        r = fn()
    except (InferenceServerException, grpc.RpcError) as e:
        emit(call, False, code_of(e), message_of(e))
        return None
    emit(call, True, result=norm(r))
    return r


def msg_dict(m):
    if m is None:
        return None
    return json_format.MessageToDict(m, preserving_proto_field_name=True)


def tensor_json(name, datatype, shape, arr):
    if arr is None:
        data = None
    elif datatype == "BYTES":
        data = [x.decode("utf-8", "backslashreplace") if isinstance(x, bytes) else str(x)
                for x in arr.flatten().tolist()]
    elif datatype in ("FP32", "FP64", "FP16"):
        data = [float(x) for x in arr.flatten().tolist()]
    elif datatype == "BOOL":
        data = [bool(x) for x in arr.flatten().tolist()]
    else:
        data = [int(x) for x in arr.flatten().tolist()]
    return {"name": name, "datatype": datatype, "shape": [int(d) for d in shape], "data": data}


def infer_result(res):
    """A tritonclient InferResult, normalized."""
    resp = res.get_response()
    return {
        "model_name": resp.model_name,
        "model_version": resp.model_version,
        "id": resp.id,
        "parameters": msg_dict(resp).get("parameters", {}),
        "outputs": [tensor_json(o.name, o.datatype, o.shape, res.as_numpy(o.name)) for o in resp.outputs],
    }


def stub_response(resp):
    """A ModelInferResponse from the stub, normalized like infer_result."""
    return infer_result(grpcclient.InferResult(resp))


_DURATION_KEYS = ("ns",)


def stats_norm(obj):
    """Statistics without what differs from run to run: durations and timestamps."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in _DURATION_KEYS or k == "last_inference":
                out[k] = bool(int(v))
            else:
                out[k] = stats_norm(v)
        return out
    if isinstance(obj, list):
        return [stats_norm(x) for x in obj]
    return obj


# --- requests

def simple_inputs(a, b, shape=(1, 16), dtype=np.int32, datatype="INT32", only0=False):
    i0 = grpcclient.InferInput("INPUT0", list(shape), datatype)
    i0.set_data_from_numpy(a.astype(dtype).reshape(shape))
    if only0:
        return [i0]
    i1 = grpcclient.InferInput("INPUT1", list(shape), datatype)
    i1.set_data_from_numpy(b.astype(dtype).reshape(shape))
    return [i0, i1]


def simple_ab():
    return np.arange(16, dtype=np.int32), np.full(16, 3, dtype=np.int32)


TYPED = {  # datatype -> (numpy type, contents field, sample values)
    "BOOL": (np.bool_, "bool_contents", [True, False, True]),
    "INT8": (np.int8, "int_contents", [-128, 0, 127]),
    "INT16": (np.int16, "int_contents", [-32768, 1, 32767]),
    "INT32": (np.int32, "int_contents", [-7, 0, 2147483647]),
    "INT64": (np.int64, "int64_contents", [-9223372036854775808, 1, 9223372036854775807]),
    "UINT8": (np.uint8, "uint_contents", [0, 1, 255]),
    "UINT16": (np.uint16, "uint_contents", [0, 2, 65535]),
    "UINT32": (np.uint32, "uint_contents", [0, 3, 4294967295]),
    "UINT64": (np.uint64, "uint64_contents", [0, 4, 18446744073709551615]),
    "FP32": (np.float32, "fp32_contents", [-1.5, 0.0, 3.25]),
    "FP64": (np.float64, "fp64_contents", [-2.5, 0.0, 1e300]),
    "BYTES": (np.object_, "bytes_contents", [b"a", b"", b"\xff\x00z"]),
}


def typed_input(name, datatype, values, shape=None):
    t = service_pb2.ModelInferRequest().InferInputTensor(name=name, datatype=datatype,
                                                         shape=shape or [len(values)])
    getattr(t.contents, TYPED[datatype][1]).extend(values)
    return t


def raw_request(model, inputs, raw, version="", outputs=(), rid=""):
    req = service_pb2.ModelInferRequest(model_name=model, model_version=version, id=rid)
    for name, datatype, shape in inputs:
        req.inputs.add(name=name, datatype=datatype, shape=shape)
    req.raw_input_contents.extend(raw)
    for o in outputs:
        req.outputs.add(name=o)
    return req


# --- the calls

def server_calls(c):
    run("is_server_live", lambda: c.is_server_live())
    run("is_server_ready", lambda: c.is_server_ready())
    run("get_server_metadata.json", lambda: c.get_server_metadata(as_json=True))
    run("get_server_metadata.proto", lambda: c.get_server_metadata(), msg_dict)


def model_info_calls(c, a):
    models = [m for m in (a.simple, a.string, a.typed, a.lifecycle, a.onnx) if m]
    for m in models:
        run(f"is_model_ready[{m}]", lambda: c.is_model_ready(m))
        run(f"get_model_metadata.json[{m}]", lambda: c.get_model_metadata(m, as_json=True))
        run(f"get_model_metadata.proto[{m}]", lambda: c.get_model_metadata(m), msg_dict)
        run(f"get_model_config.json[{m}]", lambda: c.get_model_config(m, as_json=True))
        run(f"get_model_config.proto[{m}]", lambda: c.get_model_config(m), msg_dict)
    s = a.simple
    for v in a.simple_versions:
        run(f"is_model_ready[{s},{v}]", lambda: c.is_model_ready(s, v))
        run(f"get_model_metadata.json[{s},{v}]", lambda: c.get_model_metadata(s, v, as_json=True))
        run(f"get_model_config.proto[{s},{v}]", lambda: c.get_model_config(s, v), msg_dict)
    run(f"is_model_ready[{s},{a.unknown_version}]", lambda: c.is_model_ready(s, a.unknown_version))
    run(f"is_model_ready[{a.unknown_model}]", lambda: c.is_model_ready(a.unknown_model))
    run(f"get_model_metadata[{a.unknown_model}]", lambda: c.get_model_metadata(a.unknown_model))
    run(f"get_model_metadata[{s},{a.unknown_version}]", lambda: c.get_model_metadata(s, a.unknown_version))
    run(f"get_model_metadata[{s},x]", lambda: c.get_model_metadata(s, "x"))
    run(f"get_model_config[{a.unknown_model}]", lambda: c.get_model_config(a.unknown_model))
    run(f"get_model_config[{s},{a.unknown_version}]", lambda: c.get_model_config(s, a.unknown_version))
    run("get_model_repository_index.json", lambda: c.get_model_repository_index(as_json=True))
    run("get_model_repository_index.proto", lambda: c.get_model_repository_index(), msg_dict)


def infer_calls(c, stub, a):
    s = a.simple
    x, y = simple_ab()
    run(f"infer.raw[{s}]", lambda: c.infer(s, simple_inputs(x, y)), infer_result)
    for v in a.simple_versions:
        run(f"infer.raw[{s},{v}]", lambda: c.infer(s, simple_inputs(x, y), model_version=v), infer_result)
    run(f"infer.batch2[{s}]", lambda: c.infer(s, simple_inputs(np.arange(32), np.arange(32), shape=(2, 16))),
        infer_result)
    run(f"infer.requested_outputs[{s}]",
        lambda: c.infer(s, simple_inputs(x, y), outputs=[grpcclient.InferRequestedOutput("OUTPUT1")]),
        infer_result)
    run(f"infer.request_id_parameters[{s}]",
        lambda: c.infer(s, simple_inputs(x, y), request_id="req-7", timeout=5000000,
                        parameters={"custom_s": "v", "custom_i": 3, "custom_b": True}),
        infer_result)
    # Typed contents through the stub: Triton's client only sends raw contents.
    req = service_pb2.ModelInferRequest(model_name=s, id="typed-simple")
    req.inputs.append(typed_input("INPUT0", "INT32", list(range(16)), [1, 16]))
    req.inputs.append(typed_input("INPUT1", "INT32", [3] * 16, [1, 16]))
    run(f"infer.typed[{s}]", lambda: stub.ModelInfer(req, timeout=TIMEOUT), stub_response)

    if a.typed:
        req = service_pb2.ModelInferRequest(model_name=a.typed, id="typed-all")
        for dt in a.typed_dtypes:
            req.inputs.append(typed_input("INPUT_" + dt, dt, TYPED[dt][2]))
        run(f"infer.typed[{a.typed}]", lambda: stub.ModelInfer(req, timeout=TIMEOUT), stub_response)
        ins = []
        for dt in a.typed_dtypes:
            np_t, _, vals = TYPED[dt]
            i = grpcclient.InferInput("INPUT_" + dt, [len(vals)], dt)
            i.set_data_from_numpy(np.array(vals, dtype=np_t))
            ins.append(i)
        run(f"infer.raw[{a.typed}]", lambda: c.infer(a.typed, ins), infer_result)

    if a.string:
        strs = np.array([[b"hello", b"", "\u00e9t\u00e9".encode(), b"\x00bin"]], dtype=np.object_)
        i = grpcclient.InferInput("INPUT0", [1, 4], "BYTES")
        i.set_data_from_numpy(strs)
        run(f"infer.bytes[{a.string}]", lambda: c.infer(a.string, [i]), infer_result)
        i2 = grpcclient.InferInput("INPUT0", [2, 1], "BYTES")
        i2.set_data_from_numpy(np.array([["one"], ["two"]], dtype=np.object_))
        run(f"infer.strings[{a.string}]",
            lambda: c.infer(a.string, [i2], outputs=[grpcclient.InferRequestedOutput("OUTPUT0")]), infer_result)

    if a.onnx:
        md = c.get_model_metadata(a.onnx)
        ins = []
        rng = np.random.default_rng(7)
        for t in md.inputs:
            shape = [1 if d < 0 else d for d in t.shape]
            i = grpcclient.InferInput(t.name, shape, t.datatype)
            i.set_data_from_numpy(rng.standard_normal(shape).astype(np.float32))
            ins.append(i)
        run(f"infer.raw[{a.onnx}]", lambda: c.infer(a.onnx, ins), infer_result)

    # async_infer: the callback gets (result, error).
    done = queue.Queue()
    c.async_infer(s, simple_inputs(x, y), lambda result, error: done.put((result, error)), request_id="async-1")
    res_err = done.get(timeout=TIMEOUT)
    if res_err[1] is not None:
        emit(f"async_infer[{s}]", False, code_of(res_err[1]), message_of(res_err[1]))
    else:
        emit(f"async_infer[{s}]", True, result=infer_result(res_err[0]))
    c.async_infer(a.unknown_model, simple_inputs(x, y), lambda result, error: done.put((result, error)))
    res_err = done.get(timeout=TIMEOUT)
    if res_err[1] is not None:
        emit(f"async_infer[{a.unknown_model}]", False, code_of(res_err[1]), message_of(res_err[1]))
    else:
        emit(f"async_infer[{a.unknown_model}]", True, result=infer_result(res_err[0]))


def stream_calls(c, a):
    """start_stream / async_stream_infer / stop_stream: answers arrive in any order, so they are
    printed sorted by request id (errors come back on the stream with the request's id)."""
    s = a.simple
    x, y = simple_ab()
    got = []
    lock = threading.Lock()

    def cb(result, error):
        with lock:
            got.append((result, error))

    c.start_stream(callback=cb, stream_timeout=TIMEOUT)
    sent = [
        ("s-ok", dict(model_name=s, inputs=simple_inputs(x, y))),
        ("s-version", dict(model_name=s, inputs=simple_inputs(x, y), model_version=a.simple_versions[0])),
        ("s-outputs", dict(model_name=s, inputs=simple_inputs(x, y),
                           outputs=[grpcclient.InferRequestedOutput("OUTPUT0")])),
        ("s-unknown-model", dict(model_name=a.unknown_model, inputs=simple_inputs(x, y))),
        ("s-unknown-version", dict(model_name=s, inputs=simple_inputs(x, y), model_version=a.unknown_version)),
        ("s-bad-shape", dict(model_name=s, inputs=simple_inputs(x[:8], y[:8], shape=(1, 8)))),
        ("s-missing-input", dict(model_name=s, inputs=simple_inputs(x, y, only0=True))),
    ]
    for rid, kw in sent:
        c.async_stream_infer(request_id=rid, **kw)
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        with lock:
            if len(got) >= len(sent):
                break
        time.sleep(0.01)
    c.stop_stream()
    emit("stream.count", len(got) == len(sent), result=len(got))
    by_id = {}
    for result, error in got:
        if error is not None:
            # The stream's error responses carry no id through tritonclient; the
            # message names the request.
            by_id.setdefault("error", []).append({"code": code_of(error), "message": message_of(error)})
        else:
            by_id[result.get_response().id] = infer_result(result)
    for rid, _ in sent:
        if rid in by_id:
            emit(f"stream[{rid}]", True, result=by_id[rid])
    errs = sorted(by_id.get("error", []), key=lambda e: e["message"])
    for i, e in enumerate(errs):
        emit(f"stream.error[{i}]", False, e["code"], e["message"])


def error_calls(c, stub, a):
    s = a.simple
    x, y = simple_ab()
    r = infer_result
    run(f"infer.error.unknown_model[{a.unknown_model}]", lambda: c.infer(a.unknown_model, simple_inputs(x, y)), r)
    run(f"infer.error.unknown_version[{s},{a.unknown_version}]",
        lambda: c.infer(s, simple_inputs(x, y), model_version=a.unknown_version), r)
    run(f"infer.error.bad_version[{s},x]", lambda: c.infer(s, simple_inputs(x, y), model_version="x"), r)
    run(f"infer.error.bad_shape[{s}]", lambda: c.infer(s, simple_inputs(x[:8], y[:8], shape=(1, 8))), r)
    run(f"infer.error.no_batch_dim[{s}]", lambda: c.infer(s, simple_inputs(x, y, shape=(16,))), r)
    run(f"infer.error.batch_too_large[{s}]",
        lambda: c.infer(s, simple_inputs(np.arange(16 * 9), np.arange(16 * 9), shape=(9, 16))), r)
    run(f"infer.error.bad_datatype[{s}]",
        lambda: c.infer(s, simple_inputs(x, y, dtype=np.float32, datatype="FP32")), r)
    run(f"infer.error.missing_input[{s}]", lambda: c.infer(s, simple_inputs(x, y, only0=True)), r)
    run(f"infer.error.unknown_output[{s}]",
        lambda: c.infer(s, simple_inputs(x, y), outputs=[grpcclient.InferRequestedOutput("OUTPUT9")]), r)
    run(f"infer.error.double_parameter[{s}]",
        lambda: c.infer(s, simple_inputs(x, y), parameters={"custom_f": 1.5}), r)
    ex = lambda req: (lambda: stub.ModelInfer(req, timeout=TIMEOUT))
    ri = [("INPUT0", "INT32", [1, 16]), ("INPUT1", "INT32", [1, 16])]
    raw = [x.tobytes(), y.tobytes()]
    # tritonclient refuses "triton_" parameters itself: through the stub.
    req = raw_request(s, ri, raw)
    req.parameters["triton_x"].int64_param = 1
    run(f"infer.error.reserved_parameter[{s}]", ex(req), stub_response)
    run(f"infer.error.extra_raw_contents[{s}]", ex(raw_request(s, ri, raw + [raw[0]])), stub_response)
    run(f"infer.error.wrong_input_name[{s}]",
        ex(raw_request(s, [("INPUT0", "INT32", [1, 16]), ("INPUTX", "INT32", [1, 16])], raw)), stub_response)
    run(f"infer.error.duplicate_input[{s}]",
        ex(raw_request(s, [ri[0], ri[0]], raw)), stub_response)
    run(f"infer.error.raw_byte_size[{s}]", ex(raw_request(s, ri, [raw[0][:60], raw[1]])), stub_response)
    run(f"infer.error.raw_byte_size_and_shape[{s}]",
        ex(raw_request(s, [("INPUT0", "INT32", [1, 8]), ri[1]], raw)), stub_response)
    run(f"infer.error.raw_missing_data[{s}]", ex(raw_request(s, ri, raw[:1])), stub_response)
    run(f"infer.error.unknown_datatype[{s}]",
        ex(raw_request(s, [("INPUT0", "FOO", [1, 16]), ri[1]], raw)), stub_response)
    run(f"infer.error.negative_dim[{s}]",
        ex(raw_request(s, [("INPUT0", "INT32", [1, -16]), ri[1]], raw)), stub_response)
    req = service_pb2.ModelInferRequest(model_name=s)
    req.inputs.append(typed_input("INPUT0", "INT32", list(range(15)), [1, 16]))
    req.inputs.append(typed_input("INPUT1", "INT32", [3] * 16, [1, 16]))
    run(f"infer.error.typed_count[{s}]", ex(req), stub_response)
    req = service_pb2.ModelInferRequest(model_name=s)
    t = service_pb2.ModelInferRequest().InferInputTensor(name="INPUT0", datatype="INT32", shape=[1, 16])
    t.contents.fp32_contents.extend([1.0] * 16)
    req.inputs.append(t)
    req.inputs.append(typed_input("INPUT1", "INT32", [3] * 16, [1, 16]))
    run(f"infer.error.typed_wrong_field[{s}]", ex(req), stub_response)
    req = service_pb2.ModelInferRequest(model_name=s)
    req.inputs.append(typed_input("INPUT0", "INT32", list(range(16)), [1, 16]))
    req.inputs.add(name="INPUT1", datatype="INT32", shape=[1, 16])
    req.raw_input_contents.append(y.tobytes())
    run(f"infer.error.typed_and_raw[{s}]", ex(req), stub_response)
    if a.string:
        req = raw_request(a.string, [("INPUT0", "BYTES", [1, 3])],
                          [b"".join(len(v).to_bytes(4, "little") + v for v in (b"a", b"b"))])
        run(f"infer.error.string_count[{a.string}]", ex(req), stub_response)
        req = raw_request(a.string, [("INPUT0", "BYTES", [1, 1])], [b"\x01\x00"])
        run(f"infer.error.string_length_prefix[{a.string}]", ex(req), stub_response)
    if a.typed:
        req = service_pb2.ModelInferRequest(model_name=a.typed)
        for dt in a.typed_dtypes:
            vals = TYPED[dt][2]
            if dt == "INT8":
                vals = [1000, 0, 1]  # out of INT8's range
            req.inputs.append(typed_input("INPUT_" + dt, dt, vals))
        run(f"infer.error.typed_out_of_range[{a.typed}]", ex(req), stub_response)
    run(f"get_inference_statistics[{a.unknown_model}]", lambda: c.get_inference_statistics(a.unknown_model))
    run(f"get_inference_statistics[{s},{a.unknown_version}]",
        lambda: c.get_inference_statistics(s, a.unknown_version))


def statistics_calls(c, a):
    s = a.simple
    run(f"get_inference_statistics.json[{s}]", lambda: c.get_inference_statistics(s, as_json=True), stats_norm)
    run(f"get_inference_statistics.proto[{s}]", lambda: c.get_inference_statistics(s),
        lambda r: stats_norm(msg_dict(r)))
    for v in a.simple_versions:
        run(f"get_inference_statistics.json[{s},{v}]", lambda: c.get_inference_statistics(s, v, as_json=True),
            stats_norm)
    run("get_inference_statistics.json[]", lambda: c.get_inference_statistics(as_json=True), stats_norm)


def settings_calls(c):
    run("get_log_settings", lambda: c.get_log_settings(as_json=True))
    run("update_log_settings", lambda: c.update_log_settings({"log_verbose_level": 0}, as_json=True))
    run("get_trace_settings", lambda: c.get_trace_settings(as_json=True))
    run("update_trace_settings", lambda: c.update_trace_settings(settings={"trace_rate": "1000"}, as_json=True))
    run("get_system_shared_memory_status", lambda: c.get_system_shared_memory_status(as_json=True))
    run("register_system_shared_memory", lambda: c.register_system_shared_memory("r0", "/tritongate_none", 64))
    run("unregister_system_shared_memory", lambda: c.unregister_system_shared_memory())
    run("get_cuda_shared_memory_status", lambda: c.get_cuda_shared_memory_status(as_json=True))
    run("unregister_cuda_shared_memory", lambda: c.unregister_cuda_shared_memory())


def lifecycle_calls(c, ctl, a):
    m = a.lifecycle
    override = json.dumps({
        "name": m, "backend": a.lifecycle_backend, "max_batch_size": 2,
        "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [4]}],
        "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [4]}],
        "parameters": {"marker": {"string_value": "override"}},
    })
    x = np.arange(4, dtype=np.float32).reshape(1, 4)

    def inp(batch=1):
        i = grpcclient.InferInput("INPUT0", [batch, 4], "FP32")
        i.set_data_from_numpy(np.repeat(x, batch, axis=0))
        return [i]

    def control(call, fn):
        run(call, lambda: fn(c))
        if ctl is not None:
            run("control." + call, lambda: fn(ctl))
            time.sleep(a.settle)

    control(f"load_model.config_override[{m}]", lambda k: k.load_model(m, config=override))
    run(f"get_model_config.json[{m}].after_override", lambda: c.get_model_config(m, as_json=True))
    run(f"infer[{m}].after_override", lambda: c.infer(m, inp(2)), infer_result)
    control(f"load_model.bad_config[{m}]", lambda k: k.load_model(m, config="{not json"))
    control(f"load_model[{a.unknown_model}]", lambda k: k.load_model(a.unknown_model))
    control(f"unload_model[{m}]", lambda k: k.unload_model(m))
    run(f"is_model_ready[{m}].after_unload", lambda: c.is_model_ready(m))
    run(f"infer[{m}].after_unload", lambda: c.infer(m, inp()), infer_result)
    run(f"get_model_metadata[{m}].after_unload", lambda: c.get_model_metadata(m, as_json=True))
    run("get_model_repository_index.json.after_unload", lambda: c.get_model_repository_index(as_json=True))
    control(f"unload_model[{a.unknown_model}]", lambda k: k.unload_model(a.unknown_model))
    control(f"load_model[{m}]", lambda k: k.load_model(m))
    run(f"is_model_ready[{m}].after_load", lambda: c.is_model_ready(m))
    run(f"get_model_config.json[{m}].after_load", lambda: c.get_model_config(m, as_json=True))
    run(f"infer[{m}].after_load", lambda: c.infer(m, inp()), infer_result)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--control-url")
    p.add_argument("--settle", type=float, default=1.0)
    p.add_argument("--simple", required=True)
    p.add_argument("--simple-versions", default="1")
    p.add_argument("--string")
    p.add_argument("--typed")
    p.add_argument("--typed-dtypes", default=",".join(TYPED))
    p.add_argument("--lifecycle")
    p.add_argument("--lifecycle-backend", default="identity", help="the backend of the config override")
    p.add_argument("--onnx")
    p.add_argument("--unknown-model", default="no_such_model")
    p.add_argument("--unknown-version", default="9")
    a = p.parse_args()
    a.simple_versions = a.simple_versions.split(",")
    a.typed_dtypes = a.typed_dtypes.split(",")

    c = grpcclient.InferenceServerClient(url=a.url)
    ctl = grpcclient.InferenceServerClient(url=a.control_url) if a.control_url else None
    channel = grpc.insecure_channel(a.url)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

    server_calls(c)
    model_info_calls(c, a)
    infer_calls(c, stub, a)
    stream_calls(c, a)
    error_calls(c, stub, a)
    statistics_calls(c, a)
    settings_calls(c)
    if a.lifecycle:
        lifecycle_calls(c, ctl, a)
    c.close()
    if ctl is not None:
        ctl.close()
    channel.close()


if __name__ == "__main__":
    sys.exit(main())
