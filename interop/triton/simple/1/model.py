"""Triton's "simple" example model: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 in
the datatype of the config (INT32 for simple, INT8 for simple_int8). For BYTES (simple_string)
the elements are decimal numbers as strings, and so are the outputs."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


# The datatype of each form of the model, by its name (the file serves all three).
DTYPES = {"simple_int8": "TYPE_INT8", "simple_string": "TYPE_STRING"}


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        """Fill in the tensors when a config lacks them, as Triton's add_sub example models
        do: NVIDIA's model_control example loads "simple" with an override config that gives
        only max_batch_size."""
        cfg = auto_complete_model_config.as_dict()
        dtype = DTYPES.get(cfg.get("name", ""), "TYPE_INT32")
        if not cfg.get("input"):
            for name in ("INPUT0", "INPUT1"):
                auto_complete_model_config.add_input({"name": name, "data_type": dtype, "dims": [16]})
        if not cfg.get("output"):
            for name in ("OUTPUT0", "OUTPUT1"):
                auto_complete_model_config.add_output({"name": name, "data_type": dtype, "dims": [16]})
        return auto_complete_model_config

    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        self.dtype = pb_utils.triton_string_to_numpy(cfg["output"][0]["data_type"])
        self.strings = cfg["output"][0]["data_type"] == "TYPE_STRING"

    def execute(self, requests):
        responses = []
        for request in requests:
            a = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            b = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
            if self.strings:
                a, b = a.astype(np.int32), b.astype(np.int32)
                s = np.array([str(x).encode() for x in (a + b).flatten()], dtype=np.object_).reshape(a.shape)
                d = np.array([str(x).encode() for x in (a - b).flatten()], dtype=np.object_).reshape(a.shape)
            else:
                s, d = (a + b).astype(self.dtype), (a - b).astype(self.dtype)
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT0", s), pb_utils.Tensor("OUTPUT1", d)]))
        return responses
