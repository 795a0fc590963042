"""Run unmodified NiftyNet 0.6.0 on TensorFlow 2 (Python 3.11, numpy 2, nibabel 5).

NiftyNet is TF 1 graph-mode code and is no longer maintained. Instead of editing its sources,
:func:`install` bridges, at run time and before ``import niftynet``, exactly what the
segmentation path needs (see the project's NiftyNet notes for how each one shows up):

1. ``import tensorflow as tf`` must give the v1 API with v2 behaviour disabled;
2. the few ``tensorflow.contrib`` names NiftyNet imports (``contrib`` is gone in TF 2),
   including ``layers.instance_norm`` (no_new_net's normalisation);
3. ``GeneratorEnqueuer``, which moved inside TF's private keras package;
4. numpy 2: ``tf.py_func`` outputs promoted to int64 where NiftyNet declares int32 (NEP 50),
   and the removed aliases ``np.float`` / ``np.int`` / ``np.bool``;
5. nibabel 5 removed ``get_data()``;
6. TF 2's ``map_fn`` converts its function with AutoGraph first, TF 1.15's traces it as written;
   NiftyNet's Dice loss is a ``map_fn`` over the batch, and converting it was about a second of
   every trial's graph set-up for nothing (it is plain TF ops): it is traced as TF 1.15 does.

Everything is idempotent and local to the process that calls it (the trial's child process).
"""

from __future__ import annotations

import sys
import types

_INSTALLED = False


class _TF1Module(types.ModuleType):
    """``tensorflow`` as NiftyNet expects it: the v1 API, with TF's own package path.

    Keeping the real ``__path__`` lets ``from tensorflow.python.ops import …`` still resolve.
    """

    def __init__(self, real, v1):
        super().__init__("tensorflow")
        self.__path__ = list(real.__path__)
        self.__file__ = getattr(real, "__file__", None)
        self._v1 = v1

    def __getattr__(self, name):
        return getattr(self._v1, name)


def _map_fn_as_written(v1, do_not_convert):
    """``tf.map_fn`` tracing ``fn`` as written (TF 1.15), not converted by AutoGraph."""
    original = v1.map_fn

    def map_fn(fn, *args, **kwargs):
        return original(do_not_convert(fn), *args, **kwargs)

    return map_fn


def _py_func_keeping_dtypes(v1, numpy):
    """``tf.py_func`` whose outputs are cast to the declared ``Tout`` (numpy 2 promotes)."""
    original = v1.py_func

    def py_func(func, inp, Tout, stateful=True, name=None):  # noqa: N803 (TF's own name)
        single = not isinstance(Tout, (list, tuple))
        dtypes = [Tout] if single else list(Tout)
        np_types = [v1.as_dtype(t).as_numpy_dtype for t in dtypes]

        def cast(*args):
            out = func(*args)
            outs = [out] if single else list(out)
            cast_outs = [
                numpy.asarray(o).astype(t, copy=False) if t is not object else o
                for o, t in zip(outs, np_types)  # noqa: B905 (Python 3.7)
            ]
            return cast_outs[0] if single else cast_outs

        return original(cast, inp, Tout, stateful=stateful, name=name)

    return py_func


def _contrib_modules(v1) -> dict[str, types.ModuleType]:
    """The ``tensorflow.contrib`` names the segmentation path imports, mapped to TF 2 APIs."""

    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__path__ = []  # a package, so submodule imports resolve through sys.modules
        mod.__dict__.update(attrs)
        return mod

    def l2_regularizer(scale, scope=None):
        def apply(weights):
            return v1.multiply(scale, v1.nn.l2_loss(weights), name="l2_regularizer")

        return apply

    def l1_regularizer(scale, scope=None):
        def apply(weights):
            return v1.multiply(scale, v1.reduce_sum(v1.abs(weights)), name="l1_regularizer")

        return apply

    def instance_norm(inputs, center=True, scale=True, epsilon=1e-6, activation_fn=None,
                      param_initializers=None, reuse=None, variables_collections=None,
                      outputs_collections=None, trainable=True, data_format="NHWC",
                      scope=None):
        """TF 1.15's ``contrib.layers.instance_norm`` (normalization.py), same variables.

        Mean and variance over the spatial axes of each sample and channel; ``beta`` (zeros)
        and ``gamma`` (ones) per channel under ``<scope>/InstanceNorm``, model variables as
        in contrib, so checkpoints keep their names. Collections arguments are not used by
        NiftyNet (it passes None) and are ignored.
        """
        rank = inputs.shape.ndims
        channels_first = data_format.startswith("NC")
        channel_axis = 1 if channels_first else rank - 1
        channels = inputs.shape[channel_axis]
        if channels is None:
            raise ValueError(f"Inputs {inputs.name} has undefined channels dimension.")
        broadcast = [1, channels] + [1] * (rank - 2) if channels_first else None
        moments_axes = [a for a in range(1, rank) if a != channel_axis]
        initializers = param_initializers or {}
        collections = [v1.GraphKeys.GLOBAL_VARIABLES, v1.GraphKeys.MODEL_VARIABLES]

        def param(name, default):
            variable = v1.get_variable(
                name, shape=[channels], dtype=inputs.dtype.base_dtype,
                initializer=initializers.get(name, default), trainable=trainable,
                collections=collections + ([v1.GraphKeys.TRAINABLE_VARIABLES]
                                           if trainable else []))
            return v1.reshape(variable, broadcast) if broadcast else variable

        with v1.variable_scope(scope, "InstanceNorm", [inputs], reuse=reuse):
            beta = param("beta", v1.zeros_initializer()) if center else None
            gamma = param("gamma", v1.ones_initializer()) if scale else None
            mean, variance = v1.nn.moments(inputs, moments_axes, keep_dims=True)
            outputs = v1.nn.batch_normalization(inputs, mean, variance, beta, gamma, epsilon,
                                                name="instancenorm")
            return activation_fn(outputs) if activation_fn is not None else outputs

    regularizers = module(
        "tensorflow.contrib.layers.python.layers.regularizers",
        l1_regularizer=l1_regularizer,
        l2_regularizer=l2_regularizer,
    )
    layers_layers = module(
        "tensorflow.contrib.layers.python.layers", regularizers=regularizers
    )
    layers_python = module("tensorflow.contrib.layers.python", layers=layers_layers)
    layers = module(
        "tensorflow.contrib.layers",
        python=layers_python,
        l1_regularizer=l1_regularizer,
        l2_regularizer=l2_regularizer,
        variance_scaling_initializer=v1.variance_scaling_initializer,
        instance_norm=instance_norm,
    )
    framework = module(
        "tensorflow.contrib.framework", list_variables=v1.train.list_variables
    )
    contrib = module("tensorflow.contrib", layers=layers, framework=framework)
    return {m.__name__: m for m in (contrib, framework, layers, layers_python,
                                    layers_layers, regularizers)}


def install() -> None:
    """Make ``import niftynet`` work and train on TF 2. Call before anything imports NiftyNet."""
    global _INSTALLED
    if _INSTALLED:
        return
    import numpy
    import tensorflow as real_tf

    v1 = real_tf.compat.v1
    v1.disable_v2_behavior()

    # 4. numpy 2 removed these aliases; NiftyNet uses them as dtypes.
    for alias, builtin in (("float", float), ("int", int), ("bool", bool),
                           ("object", object), ("str", str)):
        if alias not in numpy.__dict__:
            setattr(numpy, alias, builtin)

    shim = _TF1Module(real_tf, v1)
    shim.py_func = _py_func_keeping_dtypes(v1, numpy)
    shim.map_fn = _map_fn_as_written(v1, real_tf.autograph.experimental.do_not_convert)
    contrib = _contrib_modules(v1)
    shim.contrib = contrib["tensorflow.contrib"]
    sys.modules["tensorflow"] = shim
    sys.modules.update(contrib)

    # 3. GeneratorEnqueuer moved to a private submodule (pinned TF version).
    import tensorflow.python.keras.utils as keras_utils
    from tensorflow.python.keras.utils.data_utils import GeneratorEnqueuer

    keras_utils.GeneratorEnqueuer = GeneratorEnqueuer

    # 5. nibabel 5: get_data() raises; NiftyNet's loaders call it.
    import nibabel.dataobj_images as dataobj_images

    def get_data(self, caching="fill"):
        return numpy.asanyarray(self.dataobj)

    dataobj_images.DataobjImage.get_data = get_data
    _INSTALLED = True
