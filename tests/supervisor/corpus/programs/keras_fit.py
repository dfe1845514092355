"""Keras 3 (torch backend) on a tiny model: to the end, or EarlyStopping that says so."""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import numpy as np  # noqa: E402

how = sys.argv[1]
keras.utils.set_random_seed(0)
x = np.random.rand(64, 8).astype("float32")
y = np.random.rand(64, 1).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=5.0), loss="mse")
callbacks = []
if how == "early":
    callbacks.append(keras.callbacks.EarlyStopping(monitor="loss", patience=2, verbose=1))
model.fit(x, y, epochs=50 if how == "early" else 5, batch_size=8, callbacks=callbacks, verbose=1)
