"""A model that fails to load: initialize raises."""


class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("tritongate interop: this model fails to load on purpose")

    def execute(self, requests):
        return []
