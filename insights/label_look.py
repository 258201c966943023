"""Labels and boxes unlike their look: label-error scores that need no model predictions
(pure: NumPy and scikit-learn, no database). See docs/insights.md, "Labels unlike their
look".

The detector-based scores (insights/label_errors.py) see an error only where the model
predicted something. These see every ground-truth object, because what they are measured
against is the dataset's own labels (confident learning, as cleanlab does for
classification, applied per object):

- `odd_label`: a classifier learns each object's class from its features
  (insights/object_features.py: geometry, colour, edges, a tiny thumbnail), trained on
  the labels as they are, errors included. Each object is scored by a classifier that
  never saw it (K folds by annotation id: fold `id % K` is scored by the classifier
  trained on the other folds), so its probabilities p are out-of-fold. With a uniform
  noise model (a label is wrong with prior probability LOOK_PRIOR, then any other class
  equally likely), the posterior that label l is wrong has the odds
  prior / ((K - 1)(1 - prior)) x (1 - p_l) / p_l. An object the classifier cannot tell
  from its neighbours' classes (p_l near the others') scores near the prior; one that
  looks like another class and not at all like its own scores high.
- `odd_box`: a classifier learns to tell the dataset's boxes from copies of them moved
  by 30-70% of their width or height (insights/object_features.shifted_boxes), from how
  each box sits on what it holds and whether half a box's move improves that. Trained
  balanced, its probability s of "moved" gives the likelihood ratio s / (1 - s), so the
  posterior odds are prior / (1 - prior) x s / (1 - s). The same folds keep it
  out-of-fold. It is weak on its own (on the demo, seed 1, the planted bad boxes ranked
  4th to 255th by it, and its false alarms outranked real wrong labels), so the scan
  does not list it: it only raises the detector's `bad_box` on the same box
  (`corroborated`).

- objectness: two small networks tell the labelled boxes from background windows (the
  same boxes moved along their rows to where nothing is labelled); the likelihood ratio
  that a window holds an object is read from the bin of their logit, measured on the
  half of the sample each did not see. The scan asks it about the predictions no ground
  truth explains and multiplies the detector's `missing` odds by it.

Both are trained on a sample (at most LOOK_TRAIN_OBJECTS objects, spread over the
dataset): the cost of training is bounded, and an object outside the sample is scored by
its fold's classifier like any other. A fitted model is a few thousand numbers
(LookModel.to_state), kept in the scan job's state, so a resumed job scores the same way.

What they cannot see: an object whose box is missing altogether (nothing to classify), an
error the classifier's features cannot express (two classes that look and stand alike),
and systematic errors (a class labelled wrongly most of the time is learned as right).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from insights.label_errors import MIN_SCORE, Candidate

LOOK_FOLDS = 5
# Objects the classifiers train on, at most (the sample's features stay in memory).
LOOK_TRAIN_OBJECTS = 50_000
# Fewer objects in the sample, or fewer than two classes with this many: the signal is off.
LOOK_MIN_OBJECTS = 100
LOOK_MIN_CLASS = 10
# Prior probability that an object's label is wrong, and that its box is misplaced (the
# same 1% as the detector-based types, so the scores rank together).
LOOK_PRIOR = 0.01
BOX_PRIOR = 0.01
# Inverse regularisation of the logistic regressions (on standardised features).
REGULARISATION_C = 1.0
MAX_ITER = 300
# Bins of the objectness networks' logit, in which their likelihood ratio is measured.
OBJECTNESS_EDGES = np.array([-8.0, -6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
# The objectness classifier: a small network (whether a window holds an object is not
# linear in its features: on the demo a linear model gave an unlabelled truck a ratio of
# 2, the network 121, first of 1,243 windows), trained on at most OBJECTNESS_TRAIN
# windows of each kind.
MLP_HIDDEN = 32
MLP_ALPHA = 1e-2
MLP_MAX_ITER = 200
OBJECTNESS_TRAIN = 20_000


@dataclass(frozen=True)
class Linear:
    """A standardised linear classifier: p = softmax((x - mean) / scale @ coef.T + b)
    (one row of coef: sigmoid)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def proba(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:
            return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z[:, 0], -50, 50))))
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    def to_state(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Linear:
        def array(key: str) -> np.ndarray:
            return np.asarray(state[key], dtype=np.float64)

        return cls(array("mean"), array("scale"), array("coef"), array("intercept"))


def _fit_linear(x: np.ndarray, y: np.ndarray) -> Linear:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    clf = LogisticRegression(C=REGULARISATION_C, max_iter=MAX_ITER)
    clf.fit((x - mean) / scale, y)
    return Linear(
        mean.astype(np.float64),
        scale.astype(np.float64),
        np.asarray(clf.coef_, dtype=np.float64),
        np.asarray(clf.intercept_, dtype=np.float64),
    )


@dataclass(frozen=True)
class Mlp:
    """A standardised one-hidden-layer network (ReLU) with one sigmoid output:
    p = sigmoid(relu((x - mean) / scale @ w1 + b1) @ w2 + b2)."""

    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    def logit(self, x: np.ndarray) -> np.ndarray:
        hidden = np.maximum(((x - self.mean) / self.scale) @ self.w1 + self.b1, 0.0)
        return np.asarray((hidden @ self.w2 + self.b2)[:, 0])

    def to_state(self) -> dict[str, Any]:
        return {k: getattr(self, k).tolist() for k in ("mean", "scale", "w1", "b1", "w2", "b2")}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Mlp:
        def array(key: str) -> np.ndarray:
            return np.asarray(state[key], dtype=np.float64)

        return cls(*(array(k) for k in ("mean", "scale", "w1", "b1", "w2", "b2")))


def _fit_mlp(x: np.ndarray, y: np.ndarray) -> Mlp:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    clf = MLPClassifier((MLP_HIDDEN,), alpha=MLP_ALPHA, max_iter=MLP_MAX_ITER, random_state=0)
    with warnings.catch_warnings():
        # Stopping after MLP_MAX_ITER epochs is a budget, not a failure.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit((x - mean) / scale, y)
    w1, w2 = clf.coefs_
    b1, b2 = clf.intercepts_
    return Mlp(*(np.asarray(a, dtype=np.float64) for a in (mean, scale, w1, b1, w2, b2)))


def _logit_bin(z: np.ndarray) -> np.ndarray:
    return np.asarray(np.searchsorted(OBJECTNESS_EDGES, z, side="right"))


def _fit_objectness(look: np.ndarray, background: np.ndarray) -> tuple[list[Mlp], list[float]]:
    """Two networks telling labelled boxes from background windows, each trained on one
    half of each (evenly spread subsamples of at most OBJECTNESS_TRAIN rows bound the
    cost), and the likelihood ratio of each logit bin: how much likelier a labelled box is
    than a background window to land in it when scored by the network that did not see
    it (counts smoothed by one, made non-decreasing in the logit)."""
    objects = look[:: max(1, len(look) // OBJECTNESS_TRAIN)][:OBJECTNESS_TRAIN]
    empty = background[:: max(1, len(background) // OBJECTNESS_TRAIN)][:OBJECTNESS_TRAIN]
    halves = []
    bins = len(OBJECTNESS_EDGES) + 1
    seen_objects, seen_empty = np.zeros(bins), np.zeros(bins)
    for k in range(2):
        mine_o, mine_e = np.arange(len(objects)) % 2 == k, np.arange(len(empty)) % 2 == k
        x = np.concatenate([objects[~mine_o], empty[~mine_e]])
        target = np.r_[np.ones(int((~mine_o).sum())), np.zeros(int((~mine_e).sum()))]
        net = _fit_mlp(x, target)
        halves.append(net)
        seen_objects += np.bincount(_logit_bin(net.logit(objects[mine_o])), minlength=bins)
        seen_empty += np.bincount(_logit_bin(net.logit(empty[mine_e])), minlength=bins)
    ratios = ((seen_objects + 1) / (len(objects) + bins)) / ((seen_empty + 1) / (len(empty) + bins))
    return halves, np.maximum.accumulate(ratios).tolist()


def fold_of(annotation_ids: np.ndarray) -> np.ndarray:
    return np.asarray(annotation_ids, dtype=np.int64) % LOOK_FOLDS


@dataclass
class LookModel:
    """The fold classifiers: `labels[k]` and `boxes[k]` never saw fold k's objects;
    `objectness` tells the labelled boxes from windows on what the labels call background
    (`background_ratio`: its training set's background windows per labelled box)."""

    classes: list[str]
    labels: list[Linear]
    boxes: list[Linear]
    objects: int
    objectness: list[Mlp] = field(default_factory=list)
    object_ratios_by_bin: list[float] = field(default_factory=list)

    def object_ratios(self, windows: np.ndarray) -> np.ndarray:
        """Per window (object_features rows): the likelihood ratio that it holds an object
        rather than background, read from the bin of its mean logit under the objectness
        networks (`object_ratios_by_bin`, measured out-of-fold on the training sample).
        Ones where the signal has no model."""
        if not self.objectness or len(windows) == 0:
            return np.ones(len(windows))
        z = np.mean([m.logit(windows) for m in self.objectness], axis=0)
        return np.asarray(np.asarray(self.object_ratios_by_bin)[_logit_bin(z)])

    def score(
        self,
        *,
        item_ids: np.ndarray,
        annotation_ids: np.ndarray,
        labels: list[str],
        look: np.ndarray,
        fit: np.ndarray,
    ) -> list[Candidate]:
        """Candidates of these objects (`look`: object_features rows, `fit`:
        fit_features rows), each scored by its own fold's classifiers."""
        out: list[Candidate] = []
        if len(labels) == 0:
            return out
        folds = fold_of(annotation_ids)
        index = {c: k for k, c in enumerate(self.classes)}
        known = np.array([label in index for label in labels])
        own = np.array([index.get(label, 0) for label in labels])
        n_classes = len(self.classes)
        label_odds_prior = LOOK_PRIOR / ((n_classes - 1) * (1 - LOOK_PRIOR))
        box_odds_prior = BOX_PRIOR / (1 - BOX_PRIOR)
        for k in range(LOOK_FOLDS):
            rows = np.flatnonzero(folds == k)
            if len(rows) == 0:
                continue
            p = self.labels[k].proba(look[rows])
            mine = p[np.arange(len(rows)), own[rows]]
            others = p.copy()
            others[np.arange(len(rows)), own[rows]] = -1.0
            alternative = others.argmax(axis=1)
            p_alt = others.max(axis=1)
            odds = label_odds_prior * (1 - mine) / np.maximum(mine, 1e-9)
            label_score = odds / (1 + odds)
            shift = self.boxes[k].proba(fit[rows])
            odds = box_odds_prior * shift / np.maximum(1 - shift, 1e-9)
            box_score = odds / (1 + odds)
            for r, row in enumerate(rows):
                item_id, annotation_id = int(item_ids[row]), int(annotation_ids[row])
                if known[row] and label_score[r] >= MIN_SCORE:
                    out.append(
                        Candidate(
                            item_id,
                            "odd_label",
                            _r(min(1.0, label_score[r])),
                            annotation_id,
                            None,
                            {
                                "label": labels[row],
                                "p_label": _r(mine[r]),
                                "looks_like": self.classes[int(alternative[r])],
                                "p_looks_like": _r(p_alt[r]),
                                # cleanlab's normalised margin: p(label) - max p(other).
                                "margin": _r(mine[r] - p_alt[r]),
                            },
                        )
                    )
                if box_score[r] >= MIN_SCORE:
                    out.append(
                        Candidate(
                            item_id,
                            "odd_box",
                            _r(min(1.0, box_score[r])),
                            annotation_id,
                            None,
                            {"label": labels[row], "p_moved": _r(shift[r])},
                        )
                    )
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "labels": [m.to_state() for m in self.labels],
            "boxes": [m.to_state() for m in self.boxes],
            "objects": self.objects,
            "objectness": [m.to_state() for m in self.objectness],
            "object_ratios_by_bin": self.object_ratios_by_bin,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LookModel:
        return cls(
            classes=list(state["classes"]),
            labels=[Linear.from_state(s) for s in state["labels"]],
            boxes=[Linear.from_state(s) for s in state["boxes"]],
            objects=int(state["objects"]),
            objectness=[Mlp.from_state(m) for m in state.get("objectness") or []],
            object_ratios_by_bin=[float(r) for r in state.get("object_ratios_by_bin", [])],
        )


def _r(value: float) -> float:
    return round(float(value), 4)


def look_fit(
    *,
    annotation_ids: np.ndarray,
    labels: list[str],
    look: np.ndarray,
    fit: np.ndarray,
    moved_fit: np.ndarray,
    background: np.ndarray | None = None,
) -> tuple[LookModel | None, str]:
    """Train the fold classifiers on a sample's objects (`moved_fit`: fit_features of the
    moved copies of the same boxes, row for row), and the objectness classifier on them
    against `background` (object_features of windows overlapping no labelled box;
    none: no objectness). None, and why, when the sample is too small to say anything."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    classes = sorted(c for c, n in counts.items() if n >= LOOK_MIN_CLASS)
    if len(labels) < LOOK_MIN_OBJECTS or len(classes) < 2:
        return None, (
            f"off: {len(labels)} objects in {len(classes)} classes with {LOOK_MIN_CLASS} "
            f"or more (needs {LOOK_MIN_OBJECTS} objects and two such classes)."
        )
    index = {c: k for k, c in enumerate(classes)}
    keep = np.array([label in index for label in labels])
    y = np.array([index.get(label, -1) for label in labels])
    folds = fold_of(annotation_ids)
    label_models: list[Linear] = []
    box_models: list[Linear] = []
    for k in range(LOOK_FOLDS):
        train = folds != k
        rows = train & keep
        if len(set(y[rows].tolist())) < len(classes):
            rows = keep  # a tiny class absent from the other folds: train on everything
        label_models.append(_fit_linear(look[rows], y[rows]))
        x = np.concatenate([fit[train], moved_fit[train]])
        target = np.r_[np.zeros(int(train.sum())), np.ones(int(train.sum()))]
        box_models.append(_fit_linear(x, target))
    model = LookModel(classes, label_models, box_models, len(labels))
    if background is not None and len(background) >= LOOK_MIN_OBJECTS:
        model.objectness, model.object_ratios_by_bin = _fit_objectness(look, background)
    return model, f"on: {len(labels):,} objects of {len(classes)} classes, {LOOK_FOLDS} folds."


# What a look candidate corroborates: the detector's type, and the evidence that must agree.
_CORROBORATES = {"odd_label": "wrong_label", "odd_box": "bad_box"}


def corroborated(detector: list[Candidate], look: list[Candidate]) -> list[Candidate]:
    """The detector's candidates, each raised where a look candidate accuses the same
    annotation of the same error (a wrong label with the same other class; a bad box:
    odd_box is used only here, see the module's docstring).
    The two are independent evidence (the model's predictions; the dataset's own labels),
    so their likelihood ratios multiply: posterior odds = odds(detector) x odds(look) /
    prior odds (both types' priors are 1%). The raised candidate keeps the look's numbers
    in its evidence (`look_score`)."""
    index: dict[tuple[int | None, str], Candidate] = {(c.annotation_id, c.type): c for c in look}
    prior_odds = LOOK_PRIOR / (1 - LOOK_PRIOR)
    out = []
    for c in detector:
        o = None
        for look_type, detector_type in _CORROBORATES.items():
            if c.type == detector_type:
                o = index.get((c.annotation_id, look_type))
        if (
            o is not None
            and c.type == "wrong_label"
            and o.evidence.get("looks_like") != c.evidence.get("prediction_label")
        ):
            o = None
        if o is None or c.score >= 1 or o.score >= 1:
            out.append(c)
            continue
        # Only ever raised: a look score under the prior would lower it, but the look's
        # absence of evidence is not scored for every object (MIN_SCORE), so it is not used.
        odds = max(
            c.score / (1 - c.score),
            c.score / (1 - c.score) * o.score / (1 - o.score) / prior_odds,
        )
        evidence = {**c.evidence, "look_score": o.score, "detector_score": c.score}
        out.append(
            Candidate(
                c.item_id,
                c.type,
                _r(min(1.0, odds / (1 + odds))),
                c.annotation_id,
                c.prediction_id,
                evidence,
            )
        )
    return out
