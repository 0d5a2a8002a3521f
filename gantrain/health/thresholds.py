"""Every number the health rules (diagnose.py) compare against, in one frozen dataclass.

Starting values came from the literature; ``acc_perfect``, ``rt_high`` and
``weight_factor`` were then set on the runs of ``scripts/health_bench.py`` (runs made to
fail on purpose, and healthy runs of every bundled experiment; README "Is my run
healthy?" has its confusion table). References:
Karras et al. (2020), "Training Generative Adversarial Networks with Limited Data"
(ADA: the overfitting heuristic r_t = E[sign(D(real))], target 0.6, and the small-data
regime of 2k-20k images); Arjovsky & Bottou (2017), "Towards Principled Methods for
Training GANs" (a perfect D leaves G's gradient vanishing); Salimans et al. (2016),
"Improved Techniques for Training GANs" (mode collapse).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    patience: int = 3
    """Consecutive log points a rule must hold before it is a diagnosis. One noisy log
    point (a spike of the averaged logs) must not stop a run; three points are 150 steps at
    the default log_every=50, short against any run worth diagnosing."""

    warmup_points: int = 10
    """Log points at the start of a run that no rule judges: an untrained G's samples, a D
    that calls everything real (r_t ~1) and fast-moving early losses are how every run
    starts, not failures. Ten points are 500 steps at log_every=50 (and the first
    diagnosis comes patience points later); sooner than that there is nothing to save."""

    baseline_points: int = 5
    """A tag's first this many points give its early median, the run's own scale that
    the 'collapsed' and 'exploded' rules compare to (nets and losses differ by orders of
    magnitude, so no absolute scale fits all). Five points: a median robust to one odd
    first value; rules that need it say nothing until the tag has one more point."""

    acc_high: float = 0.95
    """d_won: D's accuracy on real and on fake both at least this. A healthy D (BCE,
    DCGAN) sits at 0.6-0.9 on both; above 0.95 it separates nearly every image."""

    acc_perfect: float = 0.99
    """d_won without the starved-G evidence: D's accuracy on real and on fake both at least
    this. With the non-saturating G loss, G's gradient does not vanish when D wins (that is
    the loss's point), so a D that separates essentially every image is a won game by
    itself. Healthy runs of the bundled experiments stayed below it after the warm-up
    (the default DCGAN at 0.92-0.96; scripts/health_bench.py)."""

    d_loss_floor: float = 0.1
    """d_won on runs without accuracy tags (older runs): loss/d at most this. For BCE it
    means D gives real and fake the right side with about 95% confidence on average;
    LSGAN's and hinge's D losses also reach 0 only when D wins. Not for Wasserstein."""

    grad_vanish_ratio: float = 0.1
    """d_won: G's gradient norm below this fraction of its early median: the vanishing
    gradient of a winning D (Arjovsky & Bottou 2017), an order of magnitude down."""

    loss_g_rise: float = 2.0
    """d_won (the other sign of a starved G): loss/g at least this much above its early
    median. For BCE this is D(G(z)) e^2, about 7 times, smaller than early in the run."""

    diversity_low: float = 0.3
    """mode_collapse: health/diversity (mean pairwise feature distance of fixed samples
    over that of real images; ~1 healthy) below this: the samples are three times closer
    to each other than real images are."""

    diversity_drop: float = 0.5
    """mode_collapse: ... and below this fraction of its own best so far: the diversity
    fell (an untrained G's samples also look alike; that is not a collapse)."""

    entropy_low: float = 0.6
    """mode_collapse: health/class_entropy (normalised, 1 = every class equally) below
    this. Ten classes: 0.6 is about four of them equally; a healthy sample of 64 is ~0.95."""

    entropy_drop: float = 0.75
    """mode_collapse: ... and below this fraction of its best so far (coverage fell)."""

    loss_factor: float = 100.0
    """divergence: |loss/d| or |loss/g| this many times above max(|early median|,
    loss_scale_floor). Losses move within a small factor in healthy runs."""

    loss_scale_floor: float = 1.0
    """The least loss scale for loss_factor: losses that start near 0 (hinge G, WGAN)
    would otherwise 'explode' by moving to 0.5."""

    grad_factor: float = 100.0
    """divergence: G's or D's gradient norm this many times its early median."""

    weight_factor: float = 5.0
    """divergence: G's or D's weight norm this many times its first point (the initial
    weights, logged at step 0). Weights grow slowly without weight decay (DCGAN's
    N(0, 0.02) init often doubles or triples); fivefold is a run away."""

    heldout_gap: float = 0.25
    """d_overfits: D's accuracy on training reals minus that on held-out reals at least
    this: D memorised its training images (Karras et al. 2020, fig. 1b: the outputs on
    validation images drift to 'fake' as D overfits)."""

    rt_high: float = 0.97
    """d_overfits (no held-out images): r_t at least this. ADA holds r_t at 0.6 and shows
    it rising towards 1 as D overfits a small set; but a healthy DCGAN on the 5,000
    bundled digits already runs at r_t 0.85-0.93 (scripts/health_bench.py), so only a D
    sure of nearly every training image counts."""

    rt_fake_acc: float = 0.5
    """d_overfits by r_t only while D also calls at least this fraction of the fakes fake
    (when logged): a D that calls everything real (G winning, or a confused D) has a high
    r_t without memorising anything."""

    small_data_images: int = 20_000
    """d_overfits by r_t only on training sets of at most this many images: ADA's small-
    data regime (2k-20k images of FFHQ/LSUN overfit within the first few million images)."""

    stale_evals: int = 5
    """no_progress: evaluations since the best one at least this. FID has noise of a few
    percent between evaluations; five in a row without a new best is a plateau."""

    stale_fraction: float = 0.25
    """no_progress: ... and the best at least this fraction of trainer.steps ago (a
    quarter of the run spent without improving), so frequent evaluations early in a run
    do not count as a plateau."""

    min_improvement: float = 0.01
    """no_progress: a new value counts as a new best only when it improves on the best by
    this relative amount (1%: below FID's noise at typical sample counts)."""

    long_episode_fraction: float = 0.1
    """verdict: a diagnosis that ended still makes the run unhealthy if it held for at
    least this fraction of the run's logged steps (a brief recovered episode does not)."""

    lr_scale: float = 0.5
    """The overrides' learning rates: the configured rate times this (the default of
    trainer.rollback_lr_scale, which on_unhealthy=rollback applies)."""


THRESHOLDS = Thresholds()
