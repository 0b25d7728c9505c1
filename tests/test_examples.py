"""The scripts in examples/ run and print what they claim.

Each runs as a subprocess (``--fast --no-plot``, as a user would), and its
printed numbers are parsed and checked against what the math says, never a
timing. The plot test runs each example on a temporary copy of examples/ so
the committed PNGs are never overwritten.
"""

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NUMBER = r"[-+]?\d+(?:\.\d*)?(?:e[-+]?\d+)?"
NEEDS_SKLEARN = ("04_softmax_digits.py", "05_mlp_digits.py", "07_torch_mlp_digits.py",
                 "09_low_precision_state.py")
NEEDS_TORCH = ("07_torch_mlp_digits.py",)
MLP_OPTIMIZERS = ("Adam", "AdamW", "AMSGrad", "RMSprop", "Adagrad", "SGD+momentum",
                  "AdaBelief", "Adam (textbook NumPy)")


def run_example(script, *args, directory=EXAMPLES):
    result = subprocess.run([sys.executable, str(directory / script), *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def row(output, label):
    """The numbers on the line made of ``label`` (after blanks) and numbers."""
    match = re.search(rf"^[ \t]*{re.escape(label)}((?:[ \t]+{NUMBER})+)[ \t]*$", output,
                      re.MULTILINE)
    assert match, f"no line for {label!r} in:\n{output}"
    return [float(x) for x in re.findall(NUMBER, match.group(1))]


def test_cubic():
    out = run_example("01_cubic.py", "--fast", "--no-plot")
    # From x = 0 the gradient is exactly 0 and Adam's update is 0 / (0 + eps).
    assert row(out, "0")[:2] == [0.0, 2.0]
    x, fx, distance = row(out, "2")
    assert distance < 0.05 and abs(x - 4 / 3) < 0.05
    assert abs(fx - 22 / 27) < 0.01
    assert "plot written" not in out


def test_linear_regression():
    out = run_example("02_linear_regression.py", "--fast", "--no-plot")
    w, b, loss = (float(v) for v in re.search(
        rf"w = ({NUMBER}), b = ({NUMBER}), final loss = ({NUMBER})", out).groups())
    # Noise sd 0.1 on 100 points: least squares is within ~0.02 of the truth;
    # 0.1 leaves room for Adam's last oscillations after 100 iterations.
    assert abs(w - 2) < 0.1 and abs(b - 1) < 0.1
    # The loss cannot go below the noise variance (0.01) by much, nor should stay far above.
    assert 0.005 < loss < 0.02


def test_valley():
    out = run_example("03_valley.py", "--fast", "--no-plot")
    x, y, f = row(out, "Adam, lr 0.1")
    # Adam normalizes each coordinate, so from (1.5, 1.5) it stays on the diagonal.
    assert x == y
    assert f < 1e-2
    for label in ("gradient descent, lr 0.09", "momentum 0.9, lr 0.01"):
        assert row(out, label)[-1] < 1e-2


def test_softmax_digits():
    pytest.importorskip("sklearn", reason="example 4 uses scikit-learn's bundled digits")
    out = run_example("04_softmax_digits.py", "--fast", "--no-plot")
    for label in ("Adam, lr 0.01", "SGD, lr 0.3"):
        train_loss, accuracy = row(out, label)[-2:]
        assert accuracy > 0.9 and train_loss < 0.5


def test_mlp_digits():
    pytest.importorskip("sklearn", reason="example 5 uses scikit-learn's bundled digits")
    out = run_example("05_mlp_digits.py", "--fast", "--no-plot")
    for label in MLP_OPTIMIZERS:
        _, accuracy = row(out, label)
        assert accuracy > 0.5  # chance is 0.1
    # The textbook run is the same algorithm, so it learns the same.
    assert row(out, "Adam (textbook NumPy)")[:2] == pytest.approx(row(out, "Adam")[:2], abs=0.01)
    assert re.search(rf"optimizer steps per epoch: adamcore.Adam {NUMBER} ms, "
                     rf"textbook NumPy Adam {NUMBER} ms: adamcore {NUMBER}x faster", out)


def test_low_precision_state():
    pytest.importorskip("sklearn", reason="example 9 uses scikit-learn's bundled digits")
    pytest.importorskip("ml_dtypes", reason="bfloat16 state needs ml_dtypes")
    out = run_example("09_low_precision_state.py", "--fast", "--no-plot")
    f32 = row(out, "float32")
    for label in ("bfloat16", "int8"):
        numbers = row(out, label)
        assert len(numbers) == 5 and min(numbers[:3]) > 0.5  # chance is 0.1
        assert abs(numbers[3] - f32[3]) < 0.05  # the mean, 3 epochs
    for label in ("adamcore bfloat16", "adamcore int8"):
        assert 0 < row(out, label)[-1] < 0.5


def test_torch_mlp_digits():
    pytest.importorskip("sklearn", reason="example 7 uses scikit-learn's bundled digits")
    pytest.importorskip("torch", reason="example 7 trains a torch.nn model")
    out = run_example("07_torch_mlp_digits.py", "--fast", "--no-plot")
    epochs = [[float(x) for x in re.findall(NUMBER, re.search(
        rf"^ *{e}((?: +{NUMBER}){{4}}) *$", out, re.MULTILINE).group(1))] for e in range(1, 6)]
    for ours_loss, ours_acc, torch_loss, torch_acc in epochs:
        assert ours_loss == pytest.approx(torch_loss, rel=1e-4)  # same run, float32 rounding
        assert abs(ours_acc - torch_acc) <= 0.01
    assert epochs[-1][0] < epochs[0][0] and epochs[-1][1] > 0.5
    assert float(re.search(rf"relative difference: ({NUMBER})", out).group(1)) < 1e-4
    for label in ("adamcore.torch.AdamW", "torch.optim.AdamW(fused=True)"):
        assert re.search(rf"{re.escape(label)}\s+{NUMBER} us", out)


def test_embeddings():
    out = run_example("08_embeddings.py", "--fast", "--no-plot")
    zero = float(re.search(rf"held-out RMSE of predicting 0: ({NUMBER})", out).group(1))
    results = {label: row(out, label)[:2] for label in (
        "SparseAdam", "Adam(lazy=True)", "Adam, RowGrad (dense-equivalent)",
        "Adam, dense gradient")}
    for train_mse, rmse in results.values():
        assert rmse < 0.7 * zero and train_mse < 0.5  # it learns
    # SparseAdam and lazy Adam differ only in where eps sits and in rounding
    assert results["SparseAdam"] == pytest.approx(results["Adam(lazy=True)"], abs=1e-3)
    # Adam given RowGrads is the dense step on the gradient they stand for, bit for bit
    assert results["Adam, RowGrad (dense-equivalent)"] == results["Adam, dense gradient"]
    assert re.search(r"tables after \d+ steps: bitwise equal$", out, re.MULTILINE)


@pytest.mark.parametrize("n_ranks", [2, 3])
def test_data_parallel(n_ranks):
    """Example 6 under mpiexec: the loss curve of one process on the same
    global batches, bitwise the single process on the mean of the slice
    gradients, and the state split across the ranks."""
    pytest.importorskip("sklearn")
    pytest.importorskip("mpi4py")
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    if mpiexec is None:
        pytest.skip("no mpiexec beside this Python: pip install 'adamcore[mpi]'")
    result = subprocess.run([mpiexec, "-n", str(n_ranks), sys.executable,
                             str(EXAMPLES / "06_data_parallel.py"), "--fast"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for epoch in (1, 2, 3):
        ours, theirs, diff = row(out, str(epoch))
        assert abs(ours - theirs) < 1e-5 and diff < 1e-5
    assert row(out, "3")[0] < row(out, "1")[0]  # it learns
    assert "mean of the slice gradients: yes" in out
    per_rank = [int(b) for b in re.search(r"state bytes per rank: \[([\d, ]+)\] \(one process: "
                                          r"(\d+)\)", out).group(1).split(",")]
    single = int(re.search(r"\(one process: (\d+)\)", out).group(1))
    assert sum(per_rank) == single and max(per_rank) < single


@pytest.mark.parametrize("script, png", [
    ("01_cubic.py", "cubic.png"),
    ("02_linear_regression.py", "linear_regression.png"),
    ("03_valley.py", "valley.png"),
    ("04_softmax_digits.py", "softmax_digits.png"),
    ("05_mlp_digits.py", "mlp_digits.png"),
    ("07_torch_mlp_digits.py", "torch_mlp_digits.png"),
    ("08_embeddings.py", "embeddings.png"),
])
def test_plot_is_written_next_to_the_script(tmp_path, script, png):
    if script in NEEDS_SKLEARN:
        pytest.importorskip("sklearn", reason="examples 4, 5 and 7 use scikit-learn's digits")
    if script in NEEDS_TORCH:
        pytest.importorskip("torch", reason="example 7 trains a torch.nn model")
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("*.png", "__pycache__"))
    out = run_example(script, "--fast", directory=copy)
    if importlib.util.find_spec("matplotlib") is None:
        # Without matplotlib the example still runs, and says the plot was skipped.
        assert "plot skipped: matplotlib is not installed" in out
        assert not (copy / png).exists()
    else:
        assert f"plot written to {copy / png}" in out
        assert (copy / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
