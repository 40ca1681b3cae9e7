"""NVIDIA's Python gRPC example clients, as scenarios against one server, for the interop suite.

Each scenario does what one of the examples in triton-inference-server/client
src/python/examples/ (tritonclient 2.73) sends and checks, written anew for this suite: the
same models, requests and assertions, but a failed assertion is reported instead of printed,
and the examples' silent passes (an expected error that never came) are failures here.

Prints one JSON object per scenario, in a fixed order:

  {"scenario": NAME, "ok": BOOL, "code": "OK" | gRPC code name | "", "message": STR,
   "step": STR, "want": STR}

"code" and "message" are the answer of the call that failed: its gRPC code and message, or
"" and a description when it answered wrongly; "step" names that call or check ("" when ok).
When the example requires an error and the call answered otherwise, "want" says which
("INTERNAL saying '...'") and code/message are what came instead ("OK" when no error came).
The process exits 0 whatever the scenarios gave; only a broken script exits non-zero.

The models are those the examples are written for (the server must have each loaded):

  simple            INT32 INPUT0, INPUT1 [-1,16] -> OUTPUT0 = sum, OUTPUT1 = difference
  simple_int8       the same in INT8
  simple_string     the same with BYTES elements holding decimal numbers
  simple_identity   BYTES INPUT0 [-1,-1] -> OUTPUT0
  simple_sequence   sequence batcher: INT32 INPUT [1,1] -> OUTPUT (INPUT + 1 on the start of a
                    sequence, INPUT otherwise), integer and string sequence IDs

simple_grpc_model_control loads, reloads (config override), unloads "simple" and then loads it
again as it was, so that scenarios after it find it as before; it needs explicit model control
and --index-models, the number of models in the repository index. Its NAME_MAX step is a
scenario of its own, simple_grpc_model_control.name_max, run last: servers without the fix it
checks (tritonserver 2.51) abort on it.

  --url HOST:PORT     the server
  --scenario NAME     run only these (repeatable); default: all, in the order below
  --index-models N    models the repository index must list (the example's repository has 8)
  --list              print the scenario names and exit
"""

import argparse
import asyncio
import json
import os
import queue
import sys
import traceback
import uuid
from functools import partial

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
import tritonclient.utils.shared_memory as shm
from tritonclient import utils
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from grpc_errors import code_of, message_of

TIMEOUT = 20.0  # seconds: every call, every wait for a callback or a stream response


class Failed(Exception):
    """A scenario's check failed: a call answered, but not as the example requires. code and
    message are the call's answer when it was an error ("OK" when it should have been one),
    want what the example requires."""

    def __init__(self, message, code="", want=""):
        super().__init__(message)
        self.code, self.want = code, want


class Run:
    """What one scenario is doing: the step reported when it fails."""

    def __init__(self):
        self.step = ""

    def at(self, step):
        self.step = step


def check(cond, what):
    if not cond:
        raise Failed(what)


def expect_error(run, step, fn, code=None, says=None):
    """Runs fn, which must fail (with code, and a message containing says); returns the error."""
    run.at(step)
    want = " ".join(x for x in (code or "an error", "saying %r" % says if says else "") if x)
    try:
        fn()
    except (InferenceServerException, grpc.RpcError) as e:
        if (code is not None and code_of(e) != code) or (says is not None and says not in message_of(e)):
            raise Failed(message_of(e), code_of(e), want)
        return e
    raise Failed("the call succeeded", "OK", want)


# --- the "simple" model's request, as every example builds it

def simple_data():
    """INPUT0 = 0..15, INPUT1 = all ones, both [1,16] INT32."""
    return np.arange(16, dtype=np.int32).reshape(1, 16), np.ones((1, 16), dtype=np.int32)


def simple_inputs(mod, in0, in1, datatype="INT32"):
    inputs = [mod.InferInput("INPUT0", [1, 16], datatype), mod.InferInput("INPUT1", [1, 16], datatype)]
    inputs[0].set_data_from_numpy(in0)
    inputs[1].set_data_from_numpy(in1)
    return inputs


def simple_outputs(mod):
    return [mod.InferRequestedOutput("OUTPUT0"), mod.InferRequestedOutput("OUTPUT1")]


def check_sum_diff(result, in0, in1, what="infer"):
    out0, out1 = result.as_numpy("OUTPUT0"), result.as_numpy("OUTPUT1")
    check(out0 is not None and out1 is not None, "%s: OUTPUT0 or OUTPUT1 missing from the response" % what)
    check(out0.shape == (1, 16) and out1.shape == (1, 16),
          "%s: output shapes %s and %s, want (1, 16)" % (what, out0.shape, out1.shape))
    for i in range(16):
        check(out0[0][i] == in0[0][i] + in1[0][i],
              "%s: incorrect sum at %d: %s + %s = %s" % (what, i, in0[0][i], in1[0][i], out0[0][i]))
        check(out1[0][i] == in0[0][i] - in1[0][i],
              "%s: incorrect difference at %d: %s - %s = %s" % (what, i, in0[0][i], in1[0][i], out1[0][i]))


def client(url, **kw):
    return grpcclient.InferenceServerClient(url=url, **kw)


# --- scenarios

def infer_client(run, a, compression=None):
    """simple_grpc_infer_client (-C gzip / -C deflate: the request compression option): infer with
    outputs requested, a header and a client timeout; statistics of "simple" must list exactly
    one model; infer again without requested outputs (every output comes back)."""
    c = client(a.url)
    in0, in1 = simple_data()
    inputs = simple_inputs(grpcclient, in0, in1)
    run.at("infer[outputs]")
    r = c.infer(model_name="simple", inputs=inputs, outputs=simple_outputs(grpcclient),
                client_timeout=TIMEOUT, headers={"test": "1"}, compression_algorithm=compression)
    run.at("get_inference_statistics[simple]")
    stats = c.get_inference_statistics(model_name="simple", client_timeout=TIMEOUT)
    check(len(stats.model_stats) == 1, "statistics of simple list %d models, want 1" % len(stats.model_stats))
    run.at("check[outputs]")
    check_sum_diff(r, in0, in1, "infer with outputs")
    run.at("infer[no outputs]")
    r = c.infer(model_name="simple", inputs=inputs, outputs=None, client_timeout=TIMEOUT,
                compression_algorithm=compression)
    run.at("check[no outputs]")
    check_sum_diff(r, in0, in1, "infer without outputs")
    c.close()


def async_infer_client(run, a):
    """simple_grpc_async_infer_client: one async_infer; its callback must bring the right result
    (the example waits up to 10 s)."""
    c = client(a.url)
    in0, in1 = simple_data()
    got = queue.Queue()
    run.at("async_infer")
    c.async_infer(model_name="simple", inputs=simple_inputs(grpcclient, in0, in1),
                  callback=lambda result, error: got.put((result, error)),
                  outputs=simple_outputs(grpcclient), client_timeout=TIMEOUT)
    run.at("callback")
    try:
        result, error = got.get(timeout=10)
    except queue.Empty:
        raise Failed("no callback within 10 s")
    if error is not None:
        raise error
    check_sum_diff(result, in0, in1, "async infer")
    check(got.empty(), "the callback was called more than once")
    c.close()


def aio_infer_client(run, a):
    """simple_grpc_aio_infer_client: the asyncio client: infer with outputs and a header,
    statistics (one model), then two inferences without outputs at once."""

    async def main():
        c = aioclient.InferenceServerClient(url=a.url)
        try:
            in0, in1 = simple_data()
            inputs = simple_inputs(aioclient, in0, in1)
            run.at("infer[outputs]")
            r = await c.infer(model_name="simple", inputs=inputs, outputs=simple_outputs(aioclient),
                              client_timeout=TIMEOUT, headers={"test": "1"})
            run.at("get_inference_statistics[simple]")
            stats = await c.get_inference_statistics(model_name="simple")
            check(len(stats.model_stats) == 1, "statistics of simple list %d models, want 1" % len(stats.model_stats))
            run.at("check[outputs]")
            check_sum_diff(r, in0, in1, "aio infer with outputs")
            run.at("infer[2 in parallel]")
            r1, r2 = await asyncio.gather(
                c.infer(model_name="simple", inputs=inputs, outputs=None, client_timeout=TIMEOUT),
                c.infer(model_name="simple", inputs=inputs, outputs=None, client_timeout=TIMEOUT))
            run.at("check[2 in parallel]")
            check_sum_diff(r1, in0, in1, "aio infer 1 of 2")
            check_sum_diff(r2, in0, in1, "aio infer 2 of 2")
        finally:
            await c.close()

    asyncio.run(main())


def string_infer_client(run, a):
    """simple_grpc_string_infer_client: simple_string adds and subtracts decimal strings; then
    simple_identity must echo BYTES elements with an embedded NUL ("he\\0llo") and 4-byte
    binary blobs (np.bytes_) unchanged."""
    c = client(a.url)
    in0, in1 = simple_data()
    as_bytes = lambda x: np.array([str(v).encode("utf-8") for v in x.flatten()], dtype=np.object_).reshape(x.shape)
    run.at("infer[simple_string]")
    r = c.infer(model_name="simple_string", inputs=simple_inputs(grpcclient, as_bytes(in0), as_bytes(in1), "BYTES"),
                outputs=simple_outputs(grpcclient), client_timeout=TIMEOUT)
    run.at("check[simple_string]")
    out0, out1 = r.as_numpy("OUTPUT0"), r.as_numpy("OUTPUT1")
    check(out0 is not None and out1 is not None, "simple_string: an output is missing")
    for i in range(16):
        check(int(out0[0][i]) == in0[0][i] + in1[0][i], "simple_string: incorrect sum at %d: %r" % (i, out0[0][i]))
        check(int(out1[0][i]) == in0[0][i] - in1[0][i], "simple_string: incorrect difference at %d: %r" % (i, out1[0][i]))

    def identity(what, arr):
        inp = grpcclient.InferInput("INPUT0", list(arr.shape), "BYTES")
        inp.set_data_from_numpy(arr)
        run.at("infer[simple_identity,%s]" % what)
        r = c.infer(model_name="simple_identity", inputs=[inp],
                    outputs=[grpcclient.InferRequestedOutput("OUTPUT0")], client_timeout=TIMEOUT)
        run.at("check[simple_identity,%s]" % what)
        out = r.as_numpy("OUTPUT0")
        check(out is not None, "simple_identity: OUTPUT0 missing")
        if arr.dtype == np.object_:
            check(np.array_equal(arr, out), "simple_identity %s: sent %r, got %r" % (what, arr.tolist(), out.tolist()))
        else:
            # np.bytes_ arrays come back as objects: compare element by element.
            check(out.shape == arr.shape and all(bytes(x) == bytes(y) for x, y in zip(arr.flatten(), out.flatten())),
                  "simple_identity %s: sent %r, got %r" % (what, arr.tolist(), out.tolist()))

    identity("nul", np.array(["he\x00llo".encode("utf-8")] * 16, dtype=np.object_).reshape(1, 16))
    identity("blob", np.array([b"\x00\x01\x02\x03"] * 16, dtype=np.bytes_).reshape(1, 16))
    c.close()


SEQ_VALUES = [11, 7, 5, 3, 2, 0, 1]


def sequences():
    """The examples' three sequences on simple_sequence: (id, values, expected OUTPUTs). Two
    integer IDs and a string one (a UUID); the model adds 1 on the request that starts one."""
    seqs = [(1000, [0] + SEQ_VALUES), (1001, [100] + [-v for v in SEQ_VALUES]),
            (str(uuid.uuid4()), [20] + [-v for v in SEQ_VALUES])]
    return [(sid, vals, [vals[0] + 1] + vals[1:]) for sid, vals in seqs]


def sequence_request(value):
    data = np.full((1, 1), value, dtype=np.int32)
    inp = grpcclient.InferInput("INPUT", list(data.shape), "INT32")
    inp.set_data_from_numpy(data)
    return [inp], [grpcclient.InferRequestedOutput("OUTPUT")]


def check_sequence(sid, want, got):
    for i, (w, g) in enumerate(zip(want, got)):
        check(g == w, "sequence %s: response %d is %s, want %s (all: %s, want %s)" % (sid, i, g, w, got, want))
    check(len(got) == len(want), "sequence %s: %d responses, want %d" % (sid, len(got), len(want)))


def sequence_sync_client(run, a):
    """simple_grpc_sequence_sync_infer_client: three sequences, one after the other, each
    request a blocking infer with sequence_id, sequence_start on the first and sequence_end on
    the last."""
    c = client(a.url)
    for sid, vals, want in sequences():
        got = []
        for n, v in enumerate(vals):
            inputs, outputs = sequence_request(v)
            run.at("infer[%s,%d]" % ("string-id" if isinstance(sid, str) else sid, n))
            r = c.infer(model_name="simple_sequence", inputs=inputs, outputs=outputs, sequence_id=sid,
                        sequence_start=(n == 0), sequence_end=(n == len(vals) - 1), client_timeout=TIMEOUT)
            got.append(int(r.as_numpy("OUTPUT")[0][0]))
        run.at("check[%s]" % ("string-id" if isinstance(sid, str) else sid))
        check_sequence(sid, want, got)
    c.close()


def sequence_stream_client(run, a):
    """simple_grpc_sequence_stream_infer_client: the same three sequences sent on one stream
    without waiting (request id "<sequence id>_<n>"); the responses are sorted back to their
    sequence by the id's prefix and must be in order within each."""
    seqs = sequences()
    got = queue.Queue()
    with client(a.url) as c:
        run.at("start_stream")
        c.start_stream(callback=lambda result, error: got.put((result, error)), stream_timeout=60)
        for sid, vals, _ in seqs:
            for n, v in enumerate(vals):
                inputs, outputs = sequence_request(v)
                run.at("async_stream_infer[%s,%d]" % ("string-id" if isinstance(sid, str) else sid, n))
                c.async_stream_infer(model_name="simple_sequence", inputs=inputs, outputs=outputs,
                                     request_id="%s_%d" % (sid, n + 1), sequence_id=sid,
                                     sequence_start=(n == 0), sequence_end=(n == len(vals) - 1))
        by_id = {str(sid): [] for sid, _, _ in seqs}
        total = sum(len(v) for _, v, _ in seqs)
        for k in range(total):
            run.at("stream response %d of %d" % (k + 1, total))
            try:
                result, error = got.get(timeout=TIMEOUT)
            except queue.Empty:
                raise Failed("no stream response within %.0f s (%d of %d received)" % (TIMEOUT, k, total))
            if error is not None:
                raise error
            rid = result.get_response().id
            prefix = rid.split("_")[0]
            check(prefix in by_id, "response with an unexpected request id %r" % rid)
            by_id[prefix].append(int(result.as_numpy("OUTPUT")[0][0]))
        run.at("stop_stream")
        c.stop_stream()
    for sid, _, want in seqs:
        run.at("check[%s]" % ("string-id" if isinstance(sid, str) else sid))
        check_sequence(sid, want, by_id[str(sid)])


def explicit_request(model, datatype, field, in0, in1):
    """A ModelInferRequest built with the generated classes, the inputs in a typed contents field."""
    req = service_pb2.ModelInferRequest(model_name=model, model_version="")
    for name, data in (("INPUT0", in0), ("INPUT1", in1)):
        t = service_pb2.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=[1, 16])
        getattr(t.contents, field).extend(data)
        req.inputs.append(t)
    for name in ("OUTPUT0", "OUTPUT1"):
        req.outputs.append(service_pb2.ModelInferRequest.InferRequestedOutputTensor(name=name))
    return req


def raw_outputs(resp, decode):
    """Every output of a response from its raw_output_contents, reshaped."""
    check(len(resp.raw_output_contents) == len(resp.outputs),
          "%d raw output contents for %d outputs" % (len(resp.raw_output_contents), len(resp.outputs)))
    return {o.name: np.resize(decode(resp.raw_output_contents[i]), list(o.shape)) for i, o in enumerate(resp.outputs)}


def check_explicit(outs, add, sub):
    check(len(outs) == 2, "expected two output results, got %d" % len(outs))
    o0, o1 = outs.get("OUTPUT0"), outs.get("OUTPUT1")
    check(o0 is not None and o1 is not None, "outputs %s, want OUTPUT0 and OUTPUT1" % sorted(outs))
    for i in range(16):
        check(add(i, o0[0][i]), "incorrect sum at %d: %r" % (i, o0[0][i]))
        check(sub(i, o1[0][i]), "incorrect difference at %d: %r" % (i, o1[0][i]))


def stub(url):
    ch = grpc.insecure_channel(url)
    return ch, service_pb2_grpc.GRPCInferenceServiceStub(ch)


def explicit_int_content_client(run, a):
    """grpc_explicit_int_content_client: the generated stub, INT32 in int_contents; the outputs
    from raw_output_contents. Then a request with raw_input_contents as well as contents must be
    refused with Triton's message."""
    ch, s = stub(a.url)
    in0, in1 = list(range(16)), [1] * 16
    req = explicit_request("simple", "INT32", "int_contents", in0, in1)
    run.at("ModelInfer[int_contents]")
    resp = s.ModelInfer(req, timeout=TIMEOUT)
    run.at("check")
    check_explicit(raw_outputs(resp, lambda b: np.frombuffer(b, dtype=np.int32)),
                   lambda i, v: v == in0[i] + in1[i], lambda i, v: v == in0[i] - in1[i])
    req.raw_input_contents.extend([np.array(in0[0:8]).tobytes()])
    req.inputs[0].contents.int_contents[:] = in0[8:]
    expect_error(run, "ModelInfer[contents and raw_input_contents]", lambda: s.ModelInfer(req, timeout=TIMEOUT),
                 says="contents field must not be specified when using raw_input_contents for 'INPUT0' for model 'simple'")
    ch.close()


def explicit_int8_content_client(run, a):
    """grpc_explicit_int8_content_client: INT8 tensors in int_contents on simple_int8; then
    model_version "wrong_specification" must be refused with Triton's message."""
    ch, s = stub(a.url)
    in0, in1 = list(range(16)), [1] * 16
    req = explicit_request("simple_int8", "INT8", "int_contents", in0, in1)
    run.at("ModelInfer[int_contents]")
    resp = s.ModelInfer(req, timeout=TIMEOUT)
    run.at("check")
    check_explicit(raw_outputs(resp, lambda b: np.frombuffer(b, dtype=np.int8)),
                   lambda i, v: v == in0[i] + in1[i], lambda i, v: v == in0[i] - in1[i])
    req.model_version = "wrong_specification"
    expect_error(run, "ModelInfer[version wrong_specification]", lambda: s.ModelInfer(req, timeout=TIMEOUT),
                 says="failed to get model version from specified version string 'wrong_specification'")
    ch.close()


def explicit_byte_content_client(run, a):
    """grpc_explicit_byte_content_client: BYTES decimal strings in bytes_contents on
    simple_string; the outputs are length-prefixed strings in raw_output_contents."""
    ch, s = stub(a.url)
    req = explicit_request("simple_string", "BYTES", "bytes_contents",
                           [str(i).encode("utf-8") for i in range(16)], [b"1"] * 16)
    run.at("ModelInfer[bytes_contents]")
    resp = s.ModelInfer(req, timeout=TIMEOUT)
    run.at("check")
    check_explicit(raw_outputs(resp, utils.deserialize_bytes_tensor),
                   lambda i, v: int(v) == i + 1, lambda i, v: int(v) == i - 1)
    ch.close()


def health_metadata(run, a):
    """simple_grpc_health_metadata: live (with headers), ready, model ready; server metadata
    named "triton"; model metadata of simple (with headers); an unknown model's metadata
    refused with "Request for unknown model"; simple's config."""
    c = client(a.url)
    run.at("is_server_live")
    check(c.is_server_live(headers={"test": "1", "dummy": "2"}), "server not live")
    run.at("is_server_ready")
    check(c.is_server_ready(), "server not ready")
    run.at("is_model_ready[simple]")
    check(c.is_model_ready("simple"), "simple not ready")
    run.at("get_server_metadata")
    md = c.get_server_metadata()
    check(md.name == "triton", "server metadata names %r, the example requires \"triton\"" % md.name)
    run.at("get_model_metadata[simple]")
    md = c.get_model_metadata("simple", headers={"test": "1", "dummy": "2"})
    check(md.name == "simple", "model metadata names %r" % md.name)
    expect_error(run, "get_model_metadata[wrong_model_name]", lambda: c.get_model_metadata("wrong_model_name"),
                 says="Request for unknown model")
    run.at("get_model_config[simple]")
    cfg = c.get_model_config("simple")
    check(cfg.config.name == "simple", "model config names %r" % cfg.config.name)
    c.close()


def keepalive_client(run, a):
    """simple_grpc_keepalive_client: a client with KeepAliveOptions (the example's defaults),
    one inference with a header."""
    ka = grpcclient.KeepAliveOptions(keepalive_time_ms=2**31 - 1, keepalive_timeout_ms=20000,
                                     keepalive_permit_without_calls=False, http2_max_pings_without_data=2)
    c = client(a.url, keepalive_options=ka)
    in0, in1 = simple_data()
    run.at("infer")
    r = c.infer(model_name="simple", inputs=simple_inputs(grpcclient, in0, in1), outputs=simple_outputs(grpcclient),
                headers={"test": "1"}, client_timeout=TIMEOUT)
    run.at("check")
    check_sum_diff(r, in0, in1)
    c.close()


def custom_args_client(run, a):
    """simple_grpc_custom_args_client: a client with raw gRPC channel arguments (1 MiB message
    limits, keepalive, SRV lookups), one inference with a header."""
    args = [("grpc.max_send_message_length", 1024 * 1024), ("grpc.max_receive_message_length", 1024 * 1024),
            ("grpc.keepalive_time_ms", 2**31 - 1), ("grpc.keepalive_timeout_ms", 20000),
            ("grpc.keepalive_permit_without_calls", False), ("grpc.http2.max_pings_without_data", 2),
            ("grpc.dns_enable_srv_queries", 1)]
    c = client(a.url, channel_args=args)
    in0, in1 = simple_data()
    run.at("infer")
    r = c.infer(model_name="simple", inputs=simple_inputs(grpcclient, in0, in1), outputs=simple_outputs(grpcclient),
                headers={"test": "1"}, client_timeout=TIMEOUT)
    run.at("check")
    check_sum_diff(r, in0, in1)
    c.close()


def shm_client(run, a):
    """simple_grpc_shm_client: unregister every system and CUDA region; put both inputs in one
    system shared memory region and let the server write both outputs into another; read the
    results from it; the region status; unregister and destroy both regions."""
    c = client(a.url)
    tag = "%d_%s" % (os.getpid(), uuid.uuid4().hex[:8])
    out_key, in_key = "/nvex_out_" + tag, "/nvex_in_" + tag
    handles = []
    registered = False
    try:
        run.at("unregister_system_shared_memory")
        c.unregister_system_shared_memory()
        run.at("unregister_cuda_shared_memory")
        c.unregister_cuda_shared_memory()
        in0 = np.arange(16, dtype=np.int32)
        in1 = np.ones(16, dtype=np.int32)
        size = in0.size * in0.itemsize
        run.at("create output region")
        out_h = shm.create_shared_memory_region("output_data", out_key, size * 2)
        handles.append(out_h)
        run.at("register_system_shared_memory[output_data]")
        c.register_system_shared_memory("output_data", out_key, size * 2)
        registered = True
        run.at("create input region")
        in_h = shm.create_shared_memory_region("input_data", in_key, size * 2)
        handles.append(in_h)
        shm.set_shared_memory_region(in_h, [in0])
        shm.set_shared_memory_region(in_h, [in1], offset=size)
        run.at("register_system_shared_memory[input_data]")
        c.register_system_shared_memory("input_data", in_key, size * 2)
        inputs = [grpcclient.InferInput("INPUT0", [1, 16], "INT32"), grpcclient.InferInput("INPUT1", [1, 16], "INT32")]
        inputs[0].set_shared_memory("input_data", size)
        inputs[1].set_shared_memory("input_data", size, offset=size)
        outputs = simple_outputs(grpcclient)
        outputs[0].set_shared_memory("output_data", size)
        outputs[1].set_shared_memory("output_data", size, offset=size)
        run.at("infer[shared memory]")
        r = c.infer(model_name="simple", inputs=inputs, outputs=outputs, client_timeout=TIMEOUT)
        run.at("check")
        o0, o1 = r.get_output("OUTPUT0"), r.get_output("OUTPUT1")
        check(o0 is not None, "OUTPUT0 is missing in the response")
        check(o1 is not None, "OUTPUT1 is missing in the response")
        d0 = shm.get_contents_as_numpy(out_h, utils.triton_to_np_dtype(o0.datatype), o0.shape)
        d1 = shm.get_contents_as_numpy(out_h, utils.triton_to_np_dtype(o1.datatype), o1.shape, offset=size)
        for i in range(16):
            check(d0[0][i] == in0[i] + in1[i], "shm infer: incorrect sum at %d: %s" % (i, d0[0][i]))
            check(d1[0][i] == in0[i] - in1[i], "shm infer: incorrect difference at %d: %s" % (i, d1[0][i]))
        run.at("get_system_shared_memory_status")
        st = c.get_system_shared_memory_status()
        names = sorted(st.regions.keys())
        check(names == ["input_data", "output_data"], "registered regions %s, want input_data and output_data" % names)
        run.at("unregister_system_shared_memory[all]")
        c.unregister_system_shared_memory()
        registered = False
        run.at("destroy regions")
        check(len(shm.mapped_shared_memory_regions()) == 2,
              "%d regions mapped, want 2" % len(shm.mapped_shared_memory_regions()))
        while handles:
            shm.destroy_shared_memory_region(handles.pop())
        check(len(shm.mapped_shared_memory_regions()) == 0, "regions still mapped after destroying them")
    finally:
        if registered:
            try:
                c.unregister_system_shared_memory()
            except Exception:
                pass
        for h in handles:
            try:
                shm.destroy_shared_memory_region(h)
            except Exception:
                pass
        c.close()


def model_control(run, a):
    """simple_grpc_model_control without its NAME_MAX step (model_control_name_max): the
    repository index lists the repository's models; load simple; a config override in the
    wrong format is refused ("failed to load"); one in the right format
    ({"max_batch_size":"16"}) takes; unload; an unknown model fails to load. simple is then
    loaded again from the repository, as it was."""
    c = client(a.url)
    touched = False
    done = False
    try:
        run.at("get_model_repository_index")
        n = len(c.get_model_repository_index().models)
        check(n == a.index_models, "the repository index lists %d models, want %d" % (n, a.index_models))
        run.at("load_model[simple]")
        touched = True
        c.load_model("simple")
        run.at("is_model_ready[simple].after_load")
        check(c.is_model_ready("simple"), "simple not ready after load_model")
        expect_error(run, "load_model[simple,bad config]",
                     lambda: c.load_model("simple", config='"parameters": {"config": {{"max_batch_size": "16"}}}'),
                     says="failed to load")
        run.at("load_model[simple,config max_batch_size 16]")
        c.load_model("simple", config='{"max_batch_size":"16"}')
        run.at("get_model_config[simple].after_override")
        mbs = c.get_model_config("simple").config.max_batch_size
        check(mbs == 16, "Expect max_batch_size = 16, got: %d" % mbs)
        run.at("unload_model[simple]")
        c.unload_model("simple")
        run.at("is_model_ready[simple].after_unload")
        check(not c.is_model_ready("simple"), "simple still ready after unload_model")
        expect_error(run, "load_model[wrong_model_name]", lambda: c.load_model("wrong_model_name"),
                     says="failed to load")
        done = True
    finally:
        # simple as it was (the repository's config, ready) for whatever runs next. When the
        # scenario failed, that failure is the one reported.
        if touched:
            failed_at = run.step
            try:
                run.at("restore: load_model[simple]")
                c.load_model("simple")
                check(c.is_model_ready("simple"), "simple not ready after loading it again")
            except (Failed, InferenceServerException, grpc.RpcError):
                if done:
                    raise
            if not done:
                run.at(failed_at)
        c.close()


def model_control_name_max(run, a):
    """simple_grpc_model_control's NAME_MAX step, on its own and last: a load of simple whose
    file parameter has a path component longer than NAME_MAX (config "{}") must be refused with
    INTERNAL "failed to poll from model repository", and the server must stay live. (Servers
    before the fix this step was added for, client#887, abort on it: nothing runs after it.)"""
    c = client(a.url)
    expect_error(run, "load_model[simple,file name over NAME_MAX]",
                 lambda: c.load_model("simple", config="{}", files={"file:" + "A" * 256: b"a"}),
                 code="INTERNAL", says="failed to poll from model repository")
    run.at("is_server_live.after_rejected_load")
    check(c.is_server_live(), "server not live after the rejected load")
    run.at("is_model_ready[simple].after_rejected_load")
    check(c.is_model_ready("simple"), "simple no longer ready after the rejected load")
    c.close()


SCENARIOS = [
    ("simple_grpc_infer_client", infer_client),
    ("simple_grpc_infer_client.gzip", partial(infer_client, compression="gzip")),
    ("simple_grpc_infer_client.deflate", partial(infer_client, compression="deflate")),
    ("simple_grpc_async_infer_client", async_infer_client),
    ("simple_grpc_aio_infer_client", aio_infer_client),
    ("simple_grpc_string_infer_client", string_infer_client),
    ("simple_grpc_sequence_stream_infer_client", sequence_stream_client),
    ("simple_grpc_sequence_sync_infer_client", sequence_sync_client),
    ("grpc_explicit_int_content_client", explicit_int_content_client),
    ("grpc_explicit_int8_content_client", explicit_int8_content_client),
    ("grpc_explicit_byte_content_client", explicit_byte_content_client),
    ("simple_grpc_health_metadata", health_metadata),
    ("simple_grpc_keepalive_client", keepalive_client),
    ("simple_grpc_custom_args_client", custom_args_client),
    ("simple_grpc_shm_client", shm_client),
    ("simple_grpc_model_control", model_control),
    ("simple_grpc_model_control.name_max", model_control_name_max),
]


def emit(name, ok, code="OK", message="", step="", want=""):
    print(json.dumps({"scenario": name, "ok": ok, "code": code, "message": message, "step": step, "want": want},
                     sort_keys=True), flush=True)


def run_scenario(name, fn, a):
    run = Run()
    try:
        fn(run, a)
    except Failed as e:
        emit(name, False, e.code, str(e), run.step, e.want)
    except (InferenceServerException, grpc.RpcError) as e:
        emit(name, False, code_of(e), message_of(e), run.step)
    except Exception as e:  # a bug of the scenario, or a client library surprise: say where
        tb = traceback.extract_tb(e.__traceback__)[-1]
        emit(name, False, "", "%s: %s (%s:%d)" % (type(e).__name__, e, os.path.basename(tb.filename), tb.lineno), run.step)
    else:
        emit(name, True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="localhost:8001")
    p.add_argument("--scenario", action="append", default=[])
    p.add_argument("--index-models", type=int, default=8)
    p.add_argument("--list", action="store_true")
    a = p.parse_args()
    names = [n for n, _ in SCENARIOS]
    if a.list:
        print("\n".join(names))
        return 0
    unknown = [s for s in a.scenario if s not in names]
    if unknown:
        print("unknown scenarios: %s (known: %s)" % (", ".join(unknown), ", ".join(names)), file=sys.stderr)
        return 2
    for name, fn in SCENARIOS:
        if not a.scenario or name in a.scenario:
            run_scenario(name, fn, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
