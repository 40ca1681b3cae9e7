"""simple_sequence, as Triton's sequence examples use it: INPUT [1] INT32 -> OUTPUT [1]
INT32, with the sequence batcher's control inputs START, END, READY and CORRID.

OUTPUT is what NVIDIA's simple_grpc_sequence_*_client examples expect: INPUT + 1 on the
request that starts a sequence, INPUT otherwise. ACCUMULATOR is the running sum of the
sequence's inputs since START (state kept per correlation ID, dropped at END); a request of a
sequence that was never started is an error."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.acc = {}

    def execute(self, requests):
        responses = []
        for request in requests:
            get = lambda n: pb_utils.get_input_tensor_by_name(request, n)
            value = get("INPUT").as_numpy().astype(np.int32)
            start = bool(get("START").as_numpy().flatten()[0])
            end = bool(get("END").as_numpy().flatten()[0])
            ready = bool(get("READY").as_numpy().flatten()[0])
            corrid = request.correlation_id()
            if not ready:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError("READY is false")))
                continue
            if start:
                self.acc[corrid] = 0
            elif corrid not in self.acc:
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("sequence %s was not started" % corrid)))
                continue
            self.acc[corrid] += int(value.sum())
            out = value + 1 if start else value
            acc = np.full(value.shape, self.acc[corrid], dtype=np.int32)
            if end:
                del self.acc[corrid]
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("OUTPUT", out.astype(np.int32)), pb_utils.Tensor("ACCUMULATOR", acc)]))
        return responses
