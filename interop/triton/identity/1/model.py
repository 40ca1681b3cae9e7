"""Identity: output i is input i (the config pairs INPUTn with OUTPUTn). With the config
parameter "load_delay_seconds", initialize sleeps that long first (a model slow to load)."""

import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        delay = cfg.get("parameters", {}).get("load_delay_seconds", {}).get("string_value", "")
        if delay:
            time.sleep(float(delay))
        self.pairs = list(zip([i["name"] for i in cfg["input"]], [o["name"] for o in cfg["output"]]))

    def execute(self, requests):
        responses = []
        for request in requests:
            out = []
            for i, o in self.pairs:
                t = pb_utils.get_input_tensor_by_name(request, i)
                if t is not None:
                    out.append(pb_utils.Tensor(o, t.as_numpy()))
            responses.append(pb_utils.InferenceResponse(output_tensors=out))
        return responses
