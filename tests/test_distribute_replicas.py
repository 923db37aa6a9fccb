"""Synchronous replicas in one process (MirroredStrategy over two logical CPU devices, in a
subprocess: logical devices must be set before TensorFlow starts): easyblocks' BatchNorm and
STAR's partitioned normalization in synchronized mode normalize by the global batch's
moments, give one process's gradients and keep identical moving statistics on both replicas;
variational dropout's term is the global batch's; a training with freeze_gradient,
variational_dropout and a dead line already past trains one step and leaves the frozen
variables alone on both replicas."""

import json
import subprocess
import sys
import textwrap

import numpy as np
from conftest import ROOT
from reliability_helpers import ENV, MLP, make_run

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from easyblocks import api
    from easyblocks.blocks.normalization import BatchNorm
    from easyblocks.blocks.star import PartitionedNormalization
    from easyblocks.features.embedding import VariationalDropout
    from easyblocks.train import distribute
    from easyblocks.train.loop import Trainer

    out = {}
    if sys.argv[1] == "train":  # in a process of its own: a second MirroredStrategy in one
        # process reuses the first one's collective instance keys
        # a training: freeze_gradient, variational dropout and a dead line already past
        spec = api.resolve(sys.argv[2], overrides=["train_config { train_distribute: "
                                                   "MirroredStrategy }"])
        trainer = Trainer(spec, model_dir=sys.argv[3])
        keyed = dict(trainer.state.keyed_variables)
        before = {k: v.numpy().copy() for k, v in keyed.items()}
        trainer.train()
        copies = {k: [c.numpy() for c in v.value.values] for k, v in keyed.items()}
        out["train"] = {
            "replicas": trainer.dist.num_replicas, "step": int(trainer.step.numpy()),
            "moved": {k: bool(any(not np.array_equal(c, before[k]) for c in cs))
                      for k, cs in copies.items()},
            "identical": {k: bool(all(np.array_equal(cs[0], c) for c in cs))
                          for k, cs in copies.items()}}
        print("RESULT " + json.dumps(out))
        sys.exit(0)

    rng = np.random.default_rng(0)
    # two replicas' batches from different distributions: their own moments are far from
    # the global batch's
    halves = [rng.normal(0.0, 1.0, (64, 3)).astype("float32"),
              rng.normal(5.0, 3.0, (64, 3)).astype("float32")]
    ids = [rng.integers(0, 3, (64,)).astype("int32") for _ in range(2)]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    per_replica = lambda arrays: strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(arrays[ctx.replica_id_in_sync_group]))

    def run(make, partitioned):
        inputs = lambda x, i: [x, i] if partitioned else x
        def grads(layer, x, i):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(tf.sin(layer(inputs(x, i), training=True)))
            gx, gg = tape.gradient(loss, [x, layer.gamma])
            return layer(inputs(x, i), training=True), gx, gg
        ref = make(False)
        ref.build([(None, 3), (None,)] if partitioned else (None, 3))
        with strategy.scope():
            layers = {s: make(s) for s in (True, False)}
            for layer in layers.values():
                layer.build([(None, 3), (None,)] if partitioned else (None, 3))
        y, gx, gg = grads(ref, tf.constant(np.concatenate(halves)),
                          tf.constant(np.concatenate(ids)))
        res = {"ref": {"y": y.numpy().tolist(), "gx": gx.numpy().tolist(),
                       "gg": gg.numpy().tolist(),
                       "stats": [v.numpy().tolist() for v in
                                 (ref.moving_mean, ref.moving_variance, ref.moving_count)]}}
        for s, layer in layers.items():
            step = tf.function(lambda x, i: strategy.run(
                lambda a, b: grads(layer, a, b), args=(x, i)))
            y, gx, gg = step(per_replica(halves), per_replica(ids))
            res[str(s)] = {
                "y": np.concatenate([t.numpy() for t in y.values]).tolist(),
                "gx": np.concatenate([t.numpy() for t in gx.values]).tolist(),
                "gg": np.sum([t.numpy() for t in gg.values], axis=0).tolist(),
                # each replica's copy of the moving statistics
                "stats": [[c.numpy().tolist() for c in v.value.values] for v in
                          (layer.moving_mean, layer.moving_variance, layer.moving_count)]}
        return res

    out["bn"] = run(lambda s: BatchNorm(synchronized=s), False)
    out["pn"] = run(lambda s: PartitionedNormalization(3, synchronized=s), True)

    model = keras.Sequential([keras.layers.Dense(3), BatchNorm(), keras.layers.Dense(3),
                              keras.layers.BatchNormalization()])
    model.build((None, 3))
    out["synchronized_layers"] = distribute.synchronize_batch_norm(model)
    out["flags"] = [model.layers[1].synchronized, model.layers[3].synchronized]
    out["from_config"] = BatchNorm.from_config(BatchNorm(synchronized=True).get_config()
                                               ).synchronized

    # variational dropout's term: the global batch's (lambda / 128 x sum(1 - p))
    with strategy.scope():
        vd = VariationalDropout(0.1, name="vd")
        vd.build([(None, 2), (None, 1)])
    terms = strategy.run(tf.function(lambda x: vd(tf.split(x, [2, 1], axis=-1),
                                                  training=True)[1]),
                         args=(per_replica(halves),))
    out["vd"] = [float(t) for t in terms.values]
    p = tf.sigmoid(vd.logit_p)
    out["vd_expected"] = float(0.1 / 128 * tf.reduce_sum(1.0 - p))

    print("RESULT " + json.dumps(out))
""")


def test_synchronized_normalization_dropout_term_and_training_under_two_replicas(tmp_path):
    model = MLP.replace("backbone {", "variational_dropout { regularization_lambda: 0.1 }\n"
                        "backbone {")
    run = make_run(tmp_path, model=model, num_steps=5, extra=(
        'train_config {\n  freeze_gradient: "^features/embedding_user$"\n'
        '  dead_line: "20220516 23:59:59"\n}\n'))
    script = tmp_path / "replicas.py"
    script.write_text(SCRIPT)
    out = {}
    for args in (["layers"], ["train", run["config"], str(tmp_path / "m2")]):
        r = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, env=ENV,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
        out.update(json.loads(r.stdout.split("RESULT ", 1)[1]))
    for kind in ("bn", "pn"):
        ref, sync, local = out[kind]["ref"], out[kind]["True"], out[kind]["False"]
        # synchronized: the global batch's normalization, one process's gradients
        for key in ("y", "gx", "gg"):
            np.testing.assert_allclose(sync[key], ref[key], atol=2e-5, err_msg=(kind, key))
        # and the same moving statistics (and update counts) on both replicas
        for copies, expected in zip(sync["stats"], ref["stats"]):
            for copy in copies:
                np.testing.assert_allclose(copy, expected, rtol=1e-5, atol=1e-6,
                                           err_msg=kind)
        # each replica by its own batch otherwise: far from the global batch's
        assert np.max(np.abs(np.array(local["y"]) - np.array(ref["y"]))) > 0.5, kind
        assert local["stats"][0][0] != local["stats"][0][1], kind
    assert out["synchronized_layers"] == 2 and out["flags"] == [True, True]
    assert out["from_config"] is True
    np.testing.assert_allclose(out["vd"], [out["vd_expected"]] * 2, rtol=1e-6)
    train = out["train"]
    assert train["replicas"] == 2 and train["step"] == 1  # the dead line had passed
    assert not train["moved"]["features/embedding_user"]  # frozen, on both replicas
    assert train["moved"]["features/embedding_tags"]
    assert train["moved"]["backbone/dag/mlp/dense#0/kernel"]
    assert all(train["identical"].values()), train["identical"]
    assert any("variational_dropout" in k for k in train["moved"])  # its logits train
    assert any(train["moved"][k] for k in train["moved"] if "variational_dropout" in k)
