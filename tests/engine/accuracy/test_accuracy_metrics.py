"""engine/accuracy/metrics.py: the figures checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from dlstudio_qgis.engine.accuracy import metrics as m


def boxes_iou(a, b) -> float:
    """IoU of two axis-aligned boxes (xmin, ymin, xmax, ymax), for the hand cases."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def candidates(dets, gts):
    out = []
    for d in dets:
        ious = np.array([boxes_iou(d, g) for g in gts])
        idx = np.nonzero(ious > 0)[0]
        out.append((idx, ious[idx]))
    return out


# Ground truth A, B, C; detections by confidence:
#   d1 0.9 = A exactly           IoU(A) = 1            -> TP (A)
#   d2 0.8 = B shifted by 1      IoU(B) = 90/110       -> TP (B)
#   d3 0.7 = the top half of A   IoU(A) = 50/100 = 0.5 -> FP (A is taken; nothing else)
#   d4 0.6 = the left half of C  IoU(C) = 0.5          -> TP (C; the threshold is inclusive)
# cumulative precision 1, 1, 2/3, 3/4 at recall 1/3, 2/3, 2/3, 1; the envelope is
# 1, 1, 3/4, 3/4, so AP = 1/3 * 1 + 1/3 * 1 + 1/3 * 3/4 = 11/12.
GT = [(0, 0, 10, 10), (20, 0, 30, 10), (40, 0, 50, 10)]
DETS = [(0, 0, 10, 10), (21, 0, 31, 10), (0, 0, 10, 5), (40, 0, 45, 10)]
CONF = [0.9, 0.8, 0.7, 0.6]


def test_hand_computed_detection_case():
    order, tp = m.match_detections(CONF, candidates(DETS, GT), 0.5)
    assert order.tolist() == [0, 1, 2, 3]
    assert tp.tolist() == [True, True, False, True]
    row = m.class_detection_metrics(1, tp, len(GT))
    assert (row["tp"], row["fp"], row["fn"]) == (3, 1, 0)
    assert row["precision"] == pytest.approx(3 / 4)
    assert row["recall"] == pytest.approx(1.0)
    assert row["f1"] == pytest.approx(6 / 7)  # 2*3 / (2*3 + 1 + 0)
    assert row["ap"] == pytest.approx(11 / 12)


def test_order_is_by_confidence_not_input():
    # the same detections given in reverse order: same matches, same AP
    order, tp = m.match_detections(CONF[::-1], candidates(DETS[::-1], GT), 0.5)
    assert order.tolist() == [3, 2, 1, 0]
    assert tp.tolist() == [True, True, False, True]
    assert m.average_precision(tp, 3) == pytest.approx(11 / 12)


def test_a_taken_best_match_falls_back_to_the_next_unmatched():
    # E and F overlap; det1 takes E (IoU 1); det2's best is E too (90/110 = 0.82) but E is
    # taken, so it takes F (IoU 60/140 = 0.43) when MIN_IOU allows it
    gts = [(0, 0, 10, 10), (5, 0, 15, 10)]
    dets = [(0, 0, 10, 10), (1, 0, 11, 10)]
    cand = candidates(dets, gts)
    assert m.match_detections([0.9, 0.8], cand, 0.4)[1].tolist() == [True, True]
    assert m.match_detections([0.9, 0.8], cand, 0.5)[1].tolist() == [True, False]


def test_degenerate_classes_and_the_summary():
    c1 = m.class_detection_metrics(1, [True, True, False, True], 3)
    c2 = m.class_detection_metrics(2, [False], 1)  # a detection, off target
    c3 = m.class_detection_metrics(3, [False], 0)  # detected, no ground truth
    c4 = m.class_detection_metrics(4, [], 1)  # ground truth, never detected
    assert (c2["precision"], c2["recall"], c2["f1"], c2["ap"]) == (0.0, 0.0, 0.0, 0.0)
    assert (c3["precision"], c3["recall"], c3["ap"], c3["fn"]) == (0.0, None, None, 0)
    assert (c4["precision"], c4["recall"], c4["f1"], c4["ap"]) == (None, 0.0, 0.0, 0.0)
    s = m.detection_summary([c1, c2, c3, c4])
    assert s["map"] == pytest.approx((11 / 12 + 0 + 0) / 3)  # classes with ground truth only
    assert (s["tp"], s["fp"], s["fn"], s["ground_truth"]) == (3, 3, 2, 5)
    assert s["precision"] == pytest.approx(3 / 6)
    assert s["recall"] == pytest.approx(3 / 5)
    assert s["f1"] == pytest.approx(6 / 11)
    empty = m.detection_summary([m.class_detection_metrics(1, [], 2)])
    assert (empty["precision"], empty["recall"], empty["map"]) == (None, 0.0, 0.0)


# Reference 1: 40 predicted 1, 10 predicted 2; reference 2: 5 as 1, 35 as 2, 10 no class.
# N = 100, OA = 75/100; predicted totals 45, 45 (and 10 none); chance agreement
# p_e = (50*45 + 50*45) / 100^2 = 0.45, kappa = (0.75 - 0.45) / 0.55 = 6/11.
# Class 1: precision 40/45, recall 40/50, IoU 40/(50+45-40) = 8/11, F1 80/95.
# Class 2: precision 35/45, recall 35/50, IoU 35/(50+45-35) = 7/12, F1 70/95.
HAND = np.array([[40, 10, 0], [5, 35, 10]])


def test_hand_computed_confusion_matrix():
    s = m.confusion_summary([1, 2], HAND)
    assert (s["total"], s["correct"], s["no_class"]) == (100, 75, 10)
    assert s["overall_accuracy"] == pytest.approx(0.75)
    assert s["kappa"] == pytest.approx(6 / 11)
    c1, c2 = s["classes"]
    assert (c1["precision"], c1["recall"]) == (pytest.approx(8 / 9), pytest.approx(0.8))
    assert (c1["iou"], c1["f1"]) == (pytest.approx(8 / 11), pytest.approx(16 / 19))
    assert (c2["precision"], c2["recall"]) == (pytest.approx(7 / 9), pytest.approx(0.7))
    assert (c2["iou"], c2["f1"]) == (pytest.approx(7 / 12), pytest.approx(14 / 19))
    assert s["miou"] == pytest.approx((8 / 11 + 7 / 12) / 2)


def test_confusion_from_pairs_and_chunks_agree():
    ref = [1] * 50 + [2] * 50 + [None] * 7  # a reference without a class is not counted
    pred = [1] * 40 + [2] * 10 + [1] * 5 + [2] * 35 + [None] * 10 + [1] * 7
    labels, matrix = m.confusion_matrix(ref, pred)
    assert labels == [1, 2] and matrix.tolist() == HAND.tolist()
    counter = m.ConfusionCounter()
    r = np.array([v or 0 for v in ref])
    p = np.array([v or 0 for v in pred])
    for chunk in np.array_split(np.arange(r.size), 7):
        keep = chunk[r[chunk] != 0]
        counter.add(r[keep], p[keep])
    assert counter.matrix(no_class=0)[1].tolist() == HAND.tolist()


def test_large_and_negative_values_take_the_sparse_path():
    rng = np.random.default_rng(0)
    ref = rng.choice([1, 300, -5], size=1000)
    pred = np.where(rng.random(1000) < 0.8, ref, rng.choice([1, 300, -5, 0], size=1000))
    counter = m.ConfusionCounter()
    counter.add(ref[:500], pred[:500])
    counter.add(ref[500:] % 7, pred[500:] % 7)  # small values: the dense path, mixed in
    expected = m.confusion_matrix(
        np.concatenate([ref[:500], ref[500:] % 7]).tolist(),
        np.concatenate([pred[:500], pred[500:] % 7]).tolist(),
        no_class=0,
    )
    labels, matrix = counter.matrix(no_class=0)
    assert labels == expected[0] and matrix.tolist() == expected[1].tolist()
    assert counter.sparse and counter.dense.shape[0] == 7


def test_mixed_labels_and_undefined_figures():
    labels, matrix = m.confusion_matrix(["b", 2, "a", 2], ["b", 2, "b", None])
    assert labels == [2, "a", "b"]  # numbers first, then names
    s = m.confusion_summary(labels, matrix)
    a = s["classes"][1]
    assert (a["precision"], a["recall"], a["iou"]) == (None, 0.0, 0.0)  # never predicted
    one = m.confusion_summary([1], np.array([[5, 0]]))
    assert one["overall_accuracy"] == 1.0 and one["kappa"] is None  # chance agreement is 1
    none = m.confusion_summary([], np.zeros((0, 1), dtype=int))
    assert (none["overall_accuracy"], none["kappa"], none["miou"]) == (None, None, None)
    with pytest.raises(ValueError, match="2 x 3"):
        m.confusion_summary([1, 2], np.zeros((3, 3)))
