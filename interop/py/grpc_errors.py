"""The gRPC code and message of a failed call, for the interop scripts: from a grpc.RpcError
(the generated stubs) or tritonclient's InferenceServerException."""

import grpc
from tritonclient.utils import InferenceServerException


def code_of(e):
    """The gRPC code name of a failed call ("NOT_FOUND"), "" when the server sent none."""
    if isinstance(e, grpc.RpcError):
        return e.code().name
    s = e.status() if isinstance(e, InferenceServerException) else None
    if not s:
        return ""
    return s.split(".", 1)[1] if s.startswith("StatusCode.") else s


def message_of(e):
    """The message of a failed call."""
    if isinstance(e, grpc.RpcError):
        return e.details() or ""
    if isinstance(e, InferenceServerException):
        return e.message() or ""
    return str(e)
