"""What the examples share: their command line, plotting, and the digits data."""

import argparse
from pathlib import Path

import numpy as np


def parse_args(description, fast_help="no effect: this example is already fast"):
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help=fast_help)
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    return parser.parse_args()


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend, or None (and say so) if
    matplotlib is not installed: it is optional, the printed numbers are not."""
    try:
        import matplotlib
    except ImportError:
        print("plot skipped: matplotlib is not installed (pip install matplotlib)")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, name):
    """Write ``fig`` as a PNG next to the example scripts."""
    path = Path(__file__).with_name(name)
    fig.savefig(path, dpi=100)
    print(f"plot written to {path}")


def digits(dtype, seed=0):
    """scikit-learn's bundled 8x8 digits (1797 images, no download), pixels
    scaled to [0, 1], split 75/25 with a fixed seed, stratified by class.
    Returns (x_train, y_train, x_test, y_test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        (x / 16).astype(dtype), y, test_size=0.25, random_state=seed, stratify=y)
    return x_tr, y_tr, x_te, y_te


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of integer ``labels`` under softmax(``logits``), and
    its gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)  # exp cannot overflow
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    grad = np.exp(log_p)
    grad[rows, labels] -= 1
    return -log_p[rows, labels].mean(), grad / len(labels)
