"""The zoo's custom Keras objects by class name, for (de)serialization and tfmot.

A module of its own so that :mod:`~edgecnn.models._layers` and
:mod:`~edgecnn.models._quant_layers` both register their classes here without importing
each other both ways. Pass :data:`CUSTOM_OBJECTS` as ``custom_objects`` when a model is
loaded, cloned or wrapped by tfmot.

Example:
    >>> @custom_object  # doctest: +SKIP
    ... class MyLayer(keras.layers.Layer): ...
"""

from __future__ import annotations

from edgecnn._tf import keras

# Custom layers (and their tfmot QuantizeConfigs) by class name. Fill it with @custom_object.
CUSTOM_OBJECTS: dict = {}


def custom_object(cls):
    """Register a custom layer or QuantizeConfig class for (de)serialization and tfmot."""
    CUSTOM_OBJECTS[cls.__name__] = keras.saving.register_keras_serializable("edgecnn")(cls)
    return cls
