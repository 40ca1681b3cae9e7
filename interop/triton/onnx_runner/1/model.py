"""Triton Python-backend model that runs the model.onnx of its version directory with the
onnxruntime package (tritonserver 2.51 from nvidia-pytriton ships no onnxruntime backend).

The config.pbtxt says backend: "python" and lists the ONNX model's inputs and outputs (the
ones Triton's ONNX auto-complete would give); this file is copied beside model.onnx in each
version directory. Inputs are fed by name, outputs returned for the requested names.
Parameters: "intra_op_thread_count" (default 1).
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        opts = ort.SessionOptions()
        params = cfg.get("parameters", {})
        threads = int(params.get("intra_op_thread_count", {}).get("string_value", "1") or 1)
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in cfg["input"]]
        self.outputs = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in cfg["output"]}

    def execute(self, requests):
        responses = []
        for request in requests:
            feed = {}
            for name in self.inputs:
                t = pb_utils.get_input_tensor_by_name(request, name)
                if t is not None:
                    feed[name] = t.as_numpy()
            wanted = request.requested_output_names() or list(self.outputs)
            try:
                values = self.session.run(list(wanted), feed)
            except Exception as e:  # an ONNX Runtime error is the request's, not the model's
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e))))
                continue
            out = [pb_utils.Tensor(n, np.asarray(v).astype(self.outputs[n], copy=False)) for n, v in zip(wanted, values)]
            responses.append(pb_utils.InferenceResponse(output_tensors=out))
        return responses
