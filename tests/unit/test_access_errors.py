"""A tracking server's 401/403 become one line for the user; other errors stay as they are."""

from __future__ import annotations

from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

from mlcycle.errors import AccessDenied, access_error


def test_a_401_names_the_credential_variables() -> None:
    exc = RestException({"error_code": "UNAUTHENTICATED", "message": "who are you"})
    denied = access_error(exc)
    assert isinstance(denied, AccessDenied)
    assert "MLFLOW_TRACKING_USERNAME" in str(denied)


def test_a_403_keeps_mlflows_message_and_drops_the_response_body() -> None:
    exc = MlflowException(
        "Permission denied for experiment 7. Response body: '<html>secret page</html>'",
        error_code=PERMISSION_DENIED,
    )
    denied = access_error(exc)
    assert denied is not None
    assert "Permission denied for experiment 7" in str(denied)
    assert "Response body" not in str(denied) and "secret page" not in str(denied)
    assert "EDIT or MANAGE" in str(denied)


def test_other_errors_are_not_access_errors() -> None:
    assert access_error(MlflowException("boom", error_code="RESOURCE_DOES_NOT_EXIST")) is None
    assert access_error(ValueError("boom")) is None
