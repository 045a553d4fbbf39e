"""Accuracy metrics, numpy only: confusion matrices and object detection matching.

Everything here returns plain Python (dicts, lists, floats, None) so it travels in a result
line as it is. A ratio whose denominator is 0 is None ("undefined"), never NaN and never a
crash: e.g. the precision of a class that was never predicted.

The QGIS process may import this module (numpy is there); nothing heavier is imported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

#: class values up to this bound are counted in a dense bincount; larger ones with np.unique
DENSE_LIMIT = 256


def ratio(num, den) -> float | None:
    return float(num) / float(den) if den else None


def f1_score(tp, fp, fn) -> float | None:
    """2TP / (2TP + FP + FN): the harmonic mean of precision and recall, defined (as 0) even
    where one of the two is not."""
    den = 2 * tp + fp + fn
    return 2.0 * tp / den if den else None


def mean(values: Iterable) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def label_key(value):
    """Sort key for class labels that may mix integers and strings: numbers first."""
    return (isinstance(value, str), value)


# --- confusion matrices --------------------------------------------------------------------


class ConfusionCounter:
    """Counts (reference, predicted) pairs of integer class values, chunk by chunk.

    Values in [0, DENSE_LIMIT) go through one bincount per chunk; others (negative or large)
    through np.unique. Memory does not grow with the number of chunks.
    """

    def __init__(self) -> None:
        self.dense = np.zeros((0, 0), dtype=np.int64)
        self.sparse: Counter = Counter()

    def add(self, reference: np.ndarray, predicted: np.ndarray) -> None:
        ref = np.asarray(reference, dtype=np.int64).ravel()
        pred = np.asarray(predicted, dtype=np.int64).ravel()
        if ref.size == 0:
            return
        lo = min(int(ref.min()), int(pred.min()))
        hi = max(int(ref.max()), int(pred.max()))
        if lo >= 0 and hi < DENSE_LIMIT:
            k = max(hi + 1, self.dense.shape[0])
            if k > self.dense.shape[0]:
                grown = np.zeros((k, k), dtype=np.int64)
                n = self.dense.shape[0]
                grown[:n, :n] = self.dense
                self.dense = grown
            self.dense += np.bincount(ref * k + pred, minlength=k * k).reshape(k, k)
            return
        pairs, counts = np.unique(np.stack([ref, pred], axis=1), axis=0, return_counts=True)
        for (r, p), c in zip(pairs.tolist(), counts.tolist(), strict=True):
            self.sparse[(r, p)] += c

    def pairs(self) -> Counter:
        out = Counter(self.sparse)
        for r, p in zip(*np.nonzero(self.dense), strict=True):
            out[(int(r), int(p))] += int(self.dense[r, p])
        return out

    def matrix(self, no_class=0) -> tuple[list, np.ndarray]:
        """(labels, matrix) as `confusion_matrix` makes them; `no_class` predicted = none."""
        return matrix_from_counts(self.pairs(), no_class=no_class)


def matrix_from_counts(counts: dict, no_class=None) -> tuple[list, np.ndarray]:
    """Labels and the matrix from {(reference, predicted): n}.

    Rows are the reference classes, columns the predicted ones in the same order, and one
    last column counts the items predicted as `no_class` (no class at all). The labels are
    every value seen on either side except `no_class`, sorted.
    """
    labels = sorted(
        {v for pair in counts for v in pair if v != no_class and v is not None}, key=label_key
    )
    index = {v: i for i, v in enumerate(labels)}
    n = len(labels)
    matrix = np.zeros((n, n + 1), dtype=np.int64)
    for (ref, pred), c in counts.items():
        if ref == no_class or ref is None:
            continue  # a reference without a class is not counted
        col = n if pred == no_class or pred is None else index[pred]
        matrix[index[ref], col] += int(c)
    return labels, matrix


def confusion_matrix(reference: Sequence, predicted: Sequence, no_class=None):
    """Labels and matrix (see matrix_from_counts) from paired values; reference None or
    `no_class` is skipped, predicted None or `no_class` goes to the last column."""
    return matrix_from_counts(Counter(zip(reference, predicted, strict=True)), no_class=no_class)


def confusion_summary(labels: Sequence, matrix: np.ndarray) -> dict:
    """Overall accuracy, Cohen's kappa, per-class precision/recall/F1/IoU and their means.

    `matrix` is n x (n + 1) (rows: reference; columns: predicted, then "no class"); an
    n x n matrix is taken as having no "no class" column.
    """
    m = np.asarray(matrix, dtype=np.int64)
    n = len(labels)
    if m.shape == (n, n):
        m = np.concatenate([m, np.zeros((n, 1), dtype=np.int64)], axis=1)
    if m.shape != (n, n + 1):
        raise ValueError(f"a confusion matrix for {n} classes is {n} x {n + 1}, not {m.shape}")
    total = int(m.sum())
    rows = m.sum(axis=1)  # reference counts
    cols = m[:, :n].sum(axis=0)  # predicted counts
    diag = np.diag(m[:, :n]) if n else np.zeros(0, dtype=np.int64)
    correct = int(diag.sum())
    oa = ratio(correct, total)
    kappa = None
    if total:
        expected = float((rows.astype(float) * cols).sum()) / float(total) ** 2
        if expected < 1.0:
            kappa = (oa - expected) / (1.0 - expected)
    classes = []
    for i, value in enumerate(labels):
        tp, ref, pred = int(diag[i]), int(rows[i]), int(cols[i])
        classes.append({
            "value": value, "reference": ref, "predicted": pred, "correct": tp,
            "precision": ratio(tp, pred), "recall": ratio(tp, ref),
            "f1": f1_score(tp, pred - tp, ref - tp), "iou": ratio(tp, ref + pred - tp),
        })  # fmt: skip
    return {
        "labels": list(labels),
        "matrix": m.tolist(),
        "no_class": int(m[:, n].sum()),
        "total": total,
        "correct": correct,
        "overall_accuracy": oa,
        "kappa": kappa,
        "miou": mean(c["iou"] for c in classes),
        "mean_precision": mean(c["precision"] for c in classes),
        "mean_recall": mean(c["recall"] for c in classes),
        "mean_f1": mean(c["f1"] for c in classes),
        "classes": classes,
    }


# --- object detection ----------------------------------------------------------------------


def match_detections(
    confidence: Sequence[float], candidates: Sequence[tuple], min_iou: float
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one class's detections to its ground truth.

    Detections are taken by decreasing confidence (ties in the order given); each is matched
    to the still unmatched ground-truth object with the highest IoU >= `min_iou`, if any.
    `candidates[i]` is (ground-truth indices, their IoUs) for detection i.

    Returns (order, true_positive): the detection indices by decreasing confidence, and
    whether each of them (in that order) is a true positive.
    """
    conf = np.asarray(confidence, dtype=float)
    order = np.argsort(-conf, kind="stable")
    n_gt = max((int(np.max(idx)) + 1 for idx, _ in candidates if len(idx)), default=0)
    taken = np.zeros(n_gt, dtype=bool)
    tp = np.zeros(len(order), dtype=bool)
    for k, i in enumerate(order):
        idx, ious = candidates[i]
        if len(idx) == 0:
            continue
        idx = np.asarray(idx, dtype=np.int64)
        ious = np.asarray(ious, dtype=float)
        ok = (ious >= min_iou) & ~taken[idx]
        if ok.any():
            best = int(idx[ok][np.argmax(ious[ok])])
            taken[best] = True
            tp[k] = True
    return order, tp


def average_precision(tp_sorted: Sequence[bool], n_ground_truth: int) -> float | None:
    """PASCAL VOC all-point average precision: the area under the precision envelope (the
    precision at each recall made non-increasing) of detections sorted by confidence.
    None without ground truth; 0 with ground truth but no detection."""
    if n_ground_truth <= 0:
        return None
    hits = np.asarray(tp_sorted, dtype=bool)
    if hits.size == 0:
        return 0.0
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    recall = tp / float(n_ground_truth)
    precision = tp / (tp + fp)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def class_detection_metrics(value, tp_sorted: Sequence[bool], n_ground_truth: int) -> dict:
    """One class's figures from its matched detections (sorted by confidence)."""
    hits = np.asarray(tp_sorted, dtype=bool)
    tp = int(hits.sum())
    fp = int(hits.size - tp)
    fn = int(n_ground_truth - tp)
    return {
        "value": value, "ground_truth": int(n_ground_truth), "detections": int(hits.size),
        "tp": tp, "fp": fp, "fn": fn,
        "precision": ratio(tp, tp + fp), "recall": ratio(tp, n_ground_truth),
        "f1": f1_score(tp, fp, fn), "ap": average_precision(hits, n_ground_truth),
    }  # fmt: skip


def detection_summary(classes: Sequence[dict]) -> dict:
    """The overall row: mAP over the classes with ground truth, micro precision/recall/F1."""
    tp = sum(c["tp"] for c in classes)
    fp = sum(c["fp"] for c in classes)
    fn = sum(c["fn"] for c in classes)
    gt = sum(c["ground_truth"] for c in classes)
    return {
        "map": mean(c["ap"] for c in classes if c["ground_truth"] > 0),
        "precision": ratio(tp, tp + fp), "recall": ratio(tp, gt), "f1": f1_score(tp, fp, fn),
        "tp": tp, "fp": fp, "fn": fn, "ground_truth": gt, "detections": tp + fp,
        "classes_with_ground_truth": sum(1 for c in classes if c["ground_truth"] > 0),
    }  # fmt: skip
