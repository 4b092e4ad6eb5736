"""Teacher-to-student distillation: the KL and its gradient against NumPy, the teacher's queries
through inverse relations, a frozen teacher, config errors, and a tiny UMLS run end to end."""

import dataclasses
import functools
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from kgjax import config as config_lib
from kgjax import runs
from kgjax.config import ConfigError
from kgjax.data.catalog import load_dataset
from kgjax.train.kge import build, distillation, step
from kgjax.train.kge import config as kge_config
from kgjax.train.kge.distillation import DistillationSettings
from kgjax.train.kge.state import TrainData, TrainState
from kgjax.train.kge.trainer import train

REPO = pathlib.Path(__file__).parents[1]
EXCLUDED = -1e30  # the score a step gives the negatives it leaves out (negatives.py)


def test_config(model="distmult", **overrides):
    """configs/test.py's `model` with dotted overrides (`__` for `.`)."""
    overrides = {key.replace("__", "."): value for key, value in overrides.items()}
    return config_lib.from_file(f"{REPO}/configs/test.py:{model}", overrides)


test_config.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def umls():
    return load_dataset("umls")


def numpy_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_kl_is_zero_when_student_equals_teacher_and_positive_otherwise():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 9)).astype(np.float32) * 3
    scores[:, -2:] = EXCLUDED  # left-out negatives carry no probability and no NaN
    for temperature in (0.5, 1.0, 4.0):
        same = distillation.kl_divergence(scores, scores, temperature)
        np.testing.assert_allclose(same, 0.0, atol=1e-6)
        other = scores + np.where(scores > EXCLUDED, rng.normal(size=scores.shape), 0)
        assert np.all(np.asarray(distillation.kl_divergence(other, scores, temperature)) > 0)


def test_kl_and_its_gradient_match_numpy():
    """T^2 KL(p || q) (Hinton et al.'s scaling): its gradient in the student's scores is
    T (q - p), with p and q the softmaxes at temperature T."""
    rng = np.random.default_rng(1)
    student = rng.normal(size=(4, 7)).astype(np.float32) * 2
    teacher = rng.normal(size=(4, 7)).astype(np.float32) * 2
    teacher[0, 3] = student[0, 3] = EXCLUDED
    for temperature in (0.7, 2.0):
        p, q = numpy_softmax(teacher / temperature), numpy_softmax(student / temperature)
        terms = np.where(p > 0, p * (np.log(np.maximum(p, 1e-45)) - np.log(q + 1e-45)), 0)
        want = temperature**2 * terms.sum(axis=1)
        kl = jax.jit(distillation.kl_divergence, static_argnums=2)
        np.testing.assert_allclose(kl(student, teacher, temperature), want, rtol=1e-5, atol=1e-6)
        total = lambda s, t, temperature: jnp.sum(distillation.kl_divergence(s, t, temperature))
        grad = jax.jit(jax.grad(total), static_argnums=2)(student, teacher, temperature)
        np.testing.assert_allclose(grad, temperature * (q - p), rtol=1e-4, atol=1e-6)


def test_loss_mixes_hard_and_soft_rows_and_dualde_weights_follow_the_teacher():
    rng = np.random.default_rng(2)
    student = rng.normal(size=(6, 5)).astype(np.float32)
    teacher = rng.normal(size=(6, 5)).astype(np.float32)
    teacher[:3, 0] += 4.0  # the teacher agrees with the hard label on the first three rows
    labels = np.zeros((6, 5), np.float32)
    labels[:, 0] = 1
    hard = rng.uniform(size=6).astype(np.float32)
    weights = rng.uniform(0.5, 1.5, size=6).astype(np.float32)
    kl = np.asarray(distillation.kl_divergence(student, teacher, 2.0))
    settings = DistillationSettings(None, False, 1, temperature=2.0, weight=0.3)
    loss, metrics = distillation.distillation_loss(
        hard, student, teacher, labels, weights, settings
    )
    want = np.sum(weights * (0.7 * hard + 0.3 * kl)) / weights.sum()
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(metrics["soft_label_weight"], 0.3, rtol=1e-6)

    dualde = dataclasses.replace(settings, soft_label_weighting="dualde")
    alpha = np.asarray(distillation.soft_label_weights(teacher, labels, dualde))
    agreement = numpy_softmax(teacher)[:, 0]
    np.testing.assert_allclose(alpha, np.minimum(1, 0.3 * agreement / agreement.mean()), rtol=1e-5)
    assert alpha[:3].min() > alpha[3:].max()  # soft labels that contradict the hard one count less
    loss, _ = distillation.distillation_loss(hard, student, teacher, labels, None, dualde)
    np.testing.assert_allclose(loss, np.mean((1 - alpha) * hard + alpha * kl), rtol=1e-5)


def distilled_step(config, dataset, teacher, teacher_params, teacher_reciprocal, **settings):
    """`config`'s step (Adam at rate 0.1) distilling from a teacher given as model and
    parameters: (jitted fn(state, data) -> (state, metrics), the initial state, the data)."""
    parts = build.build(config, dataset.num_entities, dataset.num_relations)
    distill = DistillationSettings(teacher, teacher_reciprocal, dataset.num_relations, **settings)
    optimizer = optax.adam(0.1)
    fn = functools.partial(
        step.train_step, model=parts.model, sampler=parts.sampler, optimizer=optimizer,
        schedule=optax.constant_schedule(0.1),
        settings=dataclasses.replace(parts.settings, distillation=distill),
    )  # fmt: skip
    data = TrainData.from_dataset(
        dataset,
        config.loss.subsampling,
        reciprocal=config.training.reciprocal,
        queries=config.training.regime == "KvsAll",
        teacher=teacher_params,
    )
    state = TrainState.create(parts.model, parts.sampler, optimizer, jax.random.key(0))
    return jax.jit(lambda state, data: fn(state, data, jax.random.key(3))), state, data


def mirrored_distmult(config, dataset):
    """A DistMult model and its tables, and the reciprocal DistMult whose inverse r + R has
    r's vector: the same scoring function, (h, r, t) read as tail_query(t, r + R) . h."""
    plain = build.make_model(config.model, dataset.num_entities, dataset.num_relations)
    params = plain.init(jax.random.key(7))
    reciprocal = dataclasses.replace(plain, num_relations=2 * dataset.num_relations)
    doubled = {**params, "relation": jnp.concatenate([params["relation"]] * 2)}
    return (plain, params), (reciprocal, doubled)


def test_teacher_scores_the_sampled_negatives_through_its_inverse_relations(umls):
    """A reciprocal teacher that is the plain student's own function: the KL over the
    positive and the sampled negatives is 0 only if the teacher scores the very ids drawn and
    answers head-batch queries through its inverses (steps 0 and 1: head- and tail-batch)."""
    config = test_config(training__regime="negative_sampling", negatives__self_negative=True)
    (_, params), (teacher, teacher_params) = mirrored_distmult(config, umls)
    step_fn, state, data = distilled_step(config, umls, teacher, teacher_params, True)
    state = state.replace(params=params)
    for index in (0, 1):
        _, metrics = step_fn(state.replace(step=jnp.int32(index)), data)
        assert float(metrics["distillation_loss"]) < 1e-5, metrics
    _, metrics = step_fn(state, data.replace(teacher=teacher.init(jax.random.key(8))))
    assert float(metrics["distillation_loss"]) > 1e-3


def test_frozen_teacher_gets_no_gradient_and_stays_out_of_the_optimizer(umls):
    """A reciprocal 1vsAll student and a plain teacher with the same function (KL 0 over all
    entities, both directions); the step's loss has no gradient in the teacher, the student
    moves, and no optimizer moment has the teacher's shape."""
    config = test_config(model__dim=16, training__regime="1vsAll", training__reciprocal=True)
    (teacher, teacher_params), (_, params) = mirrored_distmult(config, umls)
    step_fn, state, data = distilled_step(
        config, umls, teacher, teacher_params, False, temperature=2.0
    )
    state = state.replace(params=params)

    @jax.jit
    def loss(teacher_params, state):
        new_state, metrics = step_fn(state, data.replace(teacher=teacher_params))
        return metrics["loss"], (new_state, metrics)

    gradient = jax.value_and_grad(loss, has_aux=True)
    for index in (0, 1):
        (value, (new_state, metrics)), grads = gradient(
            teacher_params, state.replace(step=jnp.int32(index))
        )
        assert float(metrics["distillation_loss"]) < 1e-5 and float(value) > 0
        for grad in jax.tree.leaves(grads):
            np.testing.assert_array_equal(grad, 0.0)
    assert not np.allclose(new_state.params["entity"], state.params["entity"])
    # Adam's two moments cover the student's parameters and nothing else.
    moments = sum(leaf.size for leaf in jax.tree.leaves(new_state.opt_state) if leaf.ndim)
    assert moments == 2 * sum(leaf.size for leaf in jax.tree.leaves(state.params))
    other = teacher.init(jax.random.key(8))
    (_, (_, metrics)), grads = gradient(other, state)
    assert float(metrics["distillation_loss"]) > 1e-3
    assert all(not np.any(grad) for grad in jax.tree.leaves(grads))


def test_config_errors_name_the_key(tmp_path, umls):
    for key, value in (
        ("distillation.temperature", 0.0),
        ("distillation.weight", 1.5),
        ("distillation.soft_label_weighting", "dual"),
    ):
        with pytest.raises(ConfigError, match=f"config.{key}"):
            kge_config.validate(test_config(**{key.replace(".", "__"): value}))
    with pytest.raises(ConfigError, match="config.negatives.sampler"):
        kge_config.validate(
            test_config(negatives__sampler="mmrns", distillation__teacher_workdir="x")
        )

    def teacher_error(workdir):
        config = test_config(distillation__teacher_workdir=str(workdir))
        parts = build.build(config, umls.num_entities, umls.num_relations)
        with pytest.raises(ConfigError, match="config.distillation.teacher_workdir") as error:
            parts.distillation(umls)
        return str(error.value)

    assert "no config.json" in teacher_error(tmp_path / "missing")
    # A run over other ids (here: the entities in another order) cannot teach.
    workdir = tmp_path / "teacher"
    workdir.mkdir()
    config_lib.save(test_config("complex"), str(workdir / "config.json"))
    vocab = {"entities": list(umls.entities.names)[::-1], "relations": list(umls.relations.names)}
    (workdir / "vocab.json").write_text(json.dumps(vocab))
    assert "share the dataset's ids" in teacher_error(workdir)
    vocab["entities"].reverse()
    (workdir / "vocab.json").write_text(json.dumps(vocab))
    config = test_config(distillation__teacher_workdir=str(workdir))
    parts = build.build(config, umls.num_entities, umls.num_relations)
    assert parts.distillation(umls).teacher.name == "complex"
    with pytest.raises(ConfigError, match="holds no checkpoint"):
        parts.teacher_params(umls)


def test_distillation_config_rows():
    def row(argument):
        config = config_lib.from_file(f"{REPO}/configs/distillation.py:{argument}")
        kge_config.validate(config)
        return config

    teacher = row("fb15k237_cpu_teacher")
    assert (teacher.model.name, teacher.model.dim, teacher.training.regime) == (
        "complex",
        128,
        "1vsAll",
    )
    assert not teacher.distillation.teacher_workdir
    alone, distilled = row("fb15k237_cpu_complex32"), row("fb15k237_cpu_complex32_dualde")
    assert alone.num_steps == distilled.num_steps == teacher.num_steps
    assert distilled.model.dim == 32 and not alone.distillation.teacher_workdir
    assert distilled.distillation.teacher_workdir == "runs/distillation_fb15k237_cpu_teacher"
    assert distilled.distillation.soft_label_weighting == "dualde"
    rotate = row("wn18rr_gpu_rotate16_kd")
    assert rotate.model.name == "rotate" and rotate.model.dim == 16
    assert rotate.distillation.soft_label_weighting == "none"
    for bad in ("fb15k237_tpu_teacher", "umls_cpu_transe8", "umls_cpu_complex0"):
        with pytest.raises(ValueError, match="unknown row"):
            row(bad)


def test_a_config_without_distillation_reads_back_without_it(tmp_path):
    config = test_config()
    path = str(tmp_path / "config.json")
    config_lib.save(config, path)
    saved = json.loads(pathlib.Path(path).read_text())
    del saved["distillation"]
    pathlib.Path(path).write_text(json.dumps(saved))
    loaded = kge_config.load(path)
    assert (
        loaded.distillation.teacher_workdir == "" and kge_config.differences(loaded, config) == []
    )


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="trains a teacher and a student on UMLS and resumes the student, about 10 s on "
    "an idle machine, beyond CI's budget; set KGJAX_LONG_TESTS=1",
)
def test_tiny_umls_student_distils_from_a_tiny_teacher_and_resumes(tmp_path):
    teacher_dir = str(tmp_path / "teacher")
    train(test_config("complex", num_steps=40), teacher_dir, progress=False)
    before = runs.restore(teacher_dir).params
    student_dir = str(tmp_path / "student")
    config = test_config(
        "rotate",
        model__dim=8,
        num_steps=20,
        distillation__teacher_workdir=teacher_dir,
        distillation__soft_label_weighting="dualde",
        distillation__temperature=2.0,
    )
    results = train(config, student_dir, progress=False)
    assert results["steps"] == 20 and results["test"]["both"]["mrr"] > 0
    lines = pathlib.Path(student_dir, "metrics.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    train_events = [event for event in events if event["event"] == "train"]
    assert all(event["train/distillation_loss"] > 0 for event in train_events)
    config_lib.override(config, "num_steps", 40)
    assert train(config, student_dir, progress=False)["steps"] == 40
    after = runs.restore(teacher_dir).params
    for key in ("entity", "relation"):
        np.testing.assert_array_equal(before[key], after[key])


@pytest.mark.skipif(
    not os.environ.get("KGJAX_LONG_TESTS"),
    reason="the benchmark's smoke mode trains a teacher and four students, about 25 s on an "
    "idle machine; set KGJAX_LONG_TESTS=1",
)
def test_benchmark_smoke_mode(tmp_path):
    out = tmp_path / "distillation_umls"
    subprocess.run(
        [sys.executable, "bench/distillation.py", "--smoke", f"--out={out}",
         f"--workdirs={tmp_path / 'runs'}"],
        cwd=REPO, check=True, capture_output=True,
        env={**os.environ, "KGJAX_TFDS_DIR": str(tmp_path / "tfds")},
    )  # fmt: skip
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["teacher"]["test_mrr"] > 0 and report["teacher"]["scores_per_second"] > 0
    variants = {(row["student"], row["variant"]) for row in report["rows"]}
    assert ("complex4", "alone") in variants and ("complex4", "kd") in variants
    for row in report["rows"]:
        assert row["seeds"] == 1 and row["parameter_bytes"] > 0 and row["test_mrr"] > 0
    assert "| complex4 |" in out.with_suffix(".md").read_text()
