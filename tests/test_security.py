"""Security defaults: no network from tests, no remote code, no unsafe deserialisation in the package."""

import re
import socket
from pathlib import Path

import pytest
import torch

PACKAGE = Path(__file__).resolve().parents[1] / "srft_trl"


def test_tests_cannot_reach_the_network():
    import pytest_socket

    with pytest.raises(pytest_socket.SocketConnectBlockedError):
        # TEST-NET-1 (RFC 5737): blocked in-process by pytest-socket before any packet is sent.
        socket.create_connection(("192.0.2.1", 443), timeout=1)


def test_remote_code_is_off_by_default():
    from srft_trl import SRFTConfig

    assert SRFTConfig(output_dir="x", report_to=[], use_cpu=True).trust_remote_code is False


def test_torch_load_refuses_arbitrary_pickles(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    path = tmp_path / "payload.pt"
    torch.save(Payload(), path)
    with pytest.raises(Exception, match="[Ww]eights only"):
        torch.load(path)  # torch >= 2.6 defaults to weights_only=True


UNSAFE = {
    r"\byaml\.load\(": "use yaml.safe_load",
    r"\bpickle\.loads?\(": "no unpickling of untrusted files",
    r"weights_only\s*=\s*False": "keep torch.load weights_only",
    r"trust_remote_code\s*=\s*True": "remote code only when a recipe says so",
    r"(?<![.\w])(eval|exec)\(": "never evaluate model output",
    r"shell\s*=\s*True": "no shell interpolation",
}


# Reviewed exceptions: (file, pattern) -> why it is safe.
ALLOWED = {
    ("srft_trl/grading/hostile.py", r"(?<![.\w])(eval|exec)\("): "the hostile inputs the graders must survive: "
    "payload strings (data), never called; tests/test_grading_fuzz.py checks they are never executed",
    ("srft_trl/grading/bounded.py", r"\bpickle\.loads?\("): "a grading worker unpickles tasks from its own parent "
    "process over a private pipe, exactly what multiprocessing does; nothing from disk or the network",
}


@pytest.mark.parametrize("pattern", sorted(UNSAFE))
def test_package_source_has_no_unsafe_calls(pattern):
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{number}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(pattern, line) and not line.lstrip().startswith("#")
        and (str(path.relative_to(PACKAGE.parent)), pattern) not in ALLOWED
    ]
    assert not offenders, f"{UNSAFE[pattern]}: {offenders}"
