"""Convention version string of every metric; the results store records it beside each value.

Bump the number after ``/`` whenever a convention changes the values a metric returns
(counted points, matching, aggregation, precision); the rest of the string says what it is.
Sections (§) refer to ``docs/metrics.md``.
"""

from __future__ import annotations

VERSIONS: dict[str, str] = {
    # §1: one contingency table per sample (video: over T·H·W), float64, degenerate -> 1.0 (sklearn)
    "ari": "ari/1 all-pixels per-sample(video=T·H·W) bincount float64 degenerate=1",
    "fg_ari": "fg_ari/1 gt-foreground-pixels per-sample(video=T·H·W) bincount float64 degenerate=1",
    "ari_frame": "ari_frame/1 mean-of-per-frame all-pixels float64 degenerate=1",
    "fg_ari_frame": "fg_ari_frame/1 mean-of-per-frame gt-foreground-pixels float64 degenerate=1",
    # §2, §3
    "miou": "miou/1 hungarian fg-gt-nonempty all-pred-ids exact-iou per-sample(video=T·H·W) unmatched=0",
    "miou_bg": "miou_bg/1 hungarian gt-incl-background-nonempty all-pred-ids exact-iou unmatched=0",
    "miou_clevrtex": "miou_clevrtex/1 clevrtex-evaluator-port pad=max(Kp,Kt) float32-iou per-sample-K",
    "miou_clevrtex_fg": "miou_clevrtex_fg/1 clevrtex-evaluator-port slot0-dropped /(num_pairs-1)",
    "mbo": "mbo/1 best-iou-per-fg-gt over-all-pred-ids exact-iou per-sample(video=T·H·W)",
    # §4, §5
    "semantic": "semantic/1 global-confusion hungarian(-hist) nanmean-over-defined-classes bkg-included",
    "semantic_dti": "semantic_dti/1 global-confusion hungarian(-hist) mean(nan_to_num) as DTI SegmentationScores",
    "cluster_accuracy": "cluster_accuracy/1 unique-labels hungarian|many_to_one acc=correct/N",
    # §5 as the run scores it: the points are GT objects, each with its majority predicted class
    "cluster_objects": "cluster_objects/1 one-point-per-gt-object-per-sample(video=T·H·W) majority-predicted-class"
    "(ties=lowest) unique-labels hungarian acc=correct/N",
    "cluster_objects_m2o": "cluster_objects_m2o/1 one-point-per-gt-object-per-sample(video=T·H·W) "
    "majority-predicted-class(ties=lowest) unique-labels many_to_one acc=correct/N",
    # §6
    "mot": "mot/1 motmetrics-1.4.0-semantics per-video-accumulator mask-iou>=0.5 dist=1-iou "
    "exclude-bg-iou>0.2 counts-summed",
    "mot_ocrb": "mot_ocrb/1 ocrb-eval_mot frames[2,10) masks>5px dist>0.5-forbidden exclude-bg one-accumulator",
    "mot_boxes": "mot_boxes/1 motmetrics-1.4.0-semantics per-video-accumulator float-box-iou(boxiou) "
    "dist=1-iou forbidden-if>1-thr counts-summed",
    # §6.3: IDF1, IDP, IDR (and idtp, idfn, idfp)
    "identity": "identity/1 motmetrics-1.4.0-id_global_assignment per-video pairs-allowed-as-clear-mot "
    "idf1=2idtp/(gt+pred) counts-summed",
    # §6.4: HOTA, DetA, AssA, LocA (and DetRe, DetPr, AssRe, AssPr, OWTA)
    "hota": "hota/1 trackeval-1.3.0 alphas=arange(0.05,0.99,0.05) one-hungarian-per-frame(alignment*sim) "
    "match-if-sim>=alpha-eps per-video combine_sequences mean-over-alphas",
    # §7
    "mse": "mse/1 mean-over-CHW per-frame in[0,1] mean-over-frames float64",
    "mse_sum": "mse_sum/1 sum-over-CHW per-frame in[0,1] mean-over-frames float64",
    # §8
    "lpips_vgg": "lpips_vgg/1 v0.1 lin heads, ImageNet vgg trunk, per frame then mean per video",
}
# every CLEAR-MOT summary value carries the tracking convention
for _k in ("mota", "motp", "motp_iou"):
    VERSIONS[_k] = VERSIONS["mot"]
for _k in ("idf1", "idp", "idr"):
    VERSIONS[_k] = VERSIONS["identity"]
for _k in ("deta", "assa", "loca"):
    VERSIONS[_k] = VERSIONS["hota"]


def version(name: str) -> str:
    """The convention string of metric ``name`` (KeyError naming the known metrics otherwise)."""
    try:
        return VERSIONS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {sorted(VERSIONS)}") from None
