"""The acoustic model and everything that makes a trained one usable.

- :mod:`.network`: the LSTM-CTC network (front end, LSTM layers, output layer);
- :mod:`.dae`: the denoising autoencoder built on the network's lower layers;
- :mod:`.files`: what a trained model is on disk (``final.pt``, bundles) and finding one from a path;
- :mod:`.pretrained`: starting a model from a DAE's encoder or from another trained model;
- :mod:`.export`: TorchScript and ONNX exports, checked against PyTorch.

:class:`speechrecipe.recognizer.Recognizer` puts a trained model to use.
"""

from .dae import DenoisingAutoencoder
from .files import BundleError, load_dae, load_final, read_bundle, write_bundle
from .network import CTCModel

__all__ = ["BundleError", "CTCModel", "DenoisingAutoencoder", "load_dae", "load_final", "read_bundle", "write_bundle"]
