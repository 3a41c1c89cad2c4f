"""examples/mlp_digits.py runs end to end (2 epochs) and writes its PNG."""
import importlib.util
import os

import pytest

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples", "mlp_digits.py")


def test_mlp_digits_two_epochs(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location("mlp_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "curves.png"
    histories = module.main(["--epochs", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert set(histories) == {"no dropout", "cdropout"}
    for name, h in histories.items():
        assert len(h["train"]) == len(h["val"]) == 2
        assert all(0.0 <= a <= 1.0 for a in h["train"] + h["val"])
        assert h["val"][-1] > 0.3, f"{name}: the network should learn something in 2 epochs"
        assert f"{name} epoch   2" in text
    assert "final" in text
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_mlp_digits_rejects_bad_epochs(capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location("mlp_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit):
        module.main(["--epochs", "0"])
