"""Import name -> pip distribution: only names the supervisor can trust are ever installed.

A module is installable when its distribution is known: the built-in map below, the user's
requirements/constraints files, or the RUN.json allow-list (`pip.allow`). Anything else (a
typo such as `torchvison`, the user's own package, a name read from a dataset row) is not.

Used by supervisor.classify and supervisor.verdict (can this missing module be trusted to pip?)
and supervisor.fixes (what to install).
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Dict, Iterable, List, Mapping, Optional

IMPORT_TO_DIST = {
    "cv2": "opencv-python",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "attr": "attrs",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "jose": "python-jose",
    "magic": "python-magic",
    "Crypto": "pycryptodome",
    "OpenSSL": "pyopenssl",
    "serial": "pyserial",
    "usb": "pyusb",
    "fitz": "pymupdf",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "google.protobuf": "protobuf",
    "sentencepiece": "sentencepiece",
    "tensorboardX": "tensorboardX",
    "wandb": "wandb",
    "flash_attn": "flash-attn",
    "faiss": "faiss-cpu",
    "Levenshtein": "python-Levenshtein",
    "git": "GitPython",
    "lightning_fabric": "lightning-fabric",
    "pytorch_lightning": "pytorch-lightning",
    "jwt": "PyJWT",
    "zmq": "pyzmq",
    "websocket": "websocket-client",
    "MySQLdb": "mysqlclient",
    "psycopg2": "psycopg2-binary",
    "mpl_toolkits": "matplotlib",
    "absl": "absl-py",
    "tree": "dm-tree",
    "Bio": "biopython",
    "igraph": "python-igraph",
    "llama_cpp": "llama-cpp-python",
    "vllm": "vllm",
    "huggingface_hub": "huggingface-hub",
    "rouge_score": "rouge-score",
    "hydra": "hydra-core",
    "lightning": "lightning",
    "google.generativeai": "google-generativeai",
}
# Import name == distribution name (up to `_` vs `-`) for these well-known packages.
SAME_NAME = (
    "accelerate",
    "aiohttp",
    "bitsandbytes",
    "boto3",
    "datasets",
    "deepspeed",
    "einops",
    "evaluate",
    "fairscale",
    "fire",
    "h5py",
    "jsonlines",
    "librosa",
    "matplotlib",
    "nltk",
    "numpy",
    "omegaconf",
    "onnx",
    "onnxruntime",
    "optuna",
    "pandas",
    "peft",
    "psutil",
    "pyarrow",
    "regex",
    "requests",
    "rich",
    "safetensors",
    "scipy",
    "seaborn",
    "sentence_transformers",
    "soundfile",
    "tabulate",
    "tensorboard",
    "termcolor",
    "tiktoken",
    "timm",
    "tokenizers",
    "torch",
    "torchaudio",
    "torchmetrics",
    "torchvision",
    "tqdm",
    "transformers",
    "triton",
    "trl",
    "typer",
    "xformers",
    "xxhash",
    "zstandard",
)
for _name in SAME_NAME:
    IMPORT_TO_DIST.setdefault(_name, _name.replace("_", "-"))
REQUIREMENT_FILES = ("requirements.txt", "constraints.txt", "requirements-train.txt")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# Never pip-install these: stdlib-adjacent, or pulled from PyPI they would break the image.
REFUSED = {"torch_xla", "tensorrt", "distutils", "tkinter", "_ctypes", "_sqlite3", "_lzma", "_bz2"}
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_DIST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")


def is_valid_dist(name: str) -> bool:
    """A PEP 508 project name, nothing else: no spaces, options, URLs or paths."""
    return bool(_DIST.match(name))


def normalize(dist: str) -> str:
    """PEP 503 normalisation: `Foo_Bar.baz` and `foo-bar-baz` are the same project."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def dist_for_module(
    module: str,
    allow: Optional[Mapping[str, str]] = None,
    required: Iterable[str] = (),
) -> Optional[str]:
    """The distribution that provides `module` (dotted or not) when it is known: the built-in
    map, `allow` (import name -> distribution), or a name listed in the user's requirements
    (`required`). None otherwise: an unknown module is never guessed into a pip name."""
    if not _MODULE.match(module):
        return None
    top = module.split(".")[0]
    if top in REFUSED or top.startswith("_"):
        return None
    allow = allow or {}
    dist = allow.get(module) or allow.get(top) or IMPORT_TO_DIST.get(module)
    dist = dist or IMPORT_TO_DIST.get(top)
    if dist is None:
        listed = {normalize(name) for name in required}
        guess = top.replace("_", "-")
        dist = guess if normalize(guess) in listed else None
    return dist if dist is not None and is_valid_dist(dist) else None


def requirement_names(directories: Iterable[str], max_bytes: int = 1 << 20) -> List[str]:
    """Project names listed in the requirements/constraints files of these directories."""
    names: List[str] = []
    for base in directories:
        for filename in REQUIREMENT_FILES:
            try:
                with open(os.path.join(base, filename), "rb") as fh:
                    text = fh.read(max_bytes).decode("utf-8", "replace")
            except OSError:
                continue
            for line in text.splitlines():
                line = line.split("#", 1)[0]
                found = _REQ_NAME.match(line)
                if found and not line.lstrip().startswith("-"):
                    names.append(found.group(1))
    return names


def close_match(module: str, extra: Iterable[str] = ()) -> Optional[str]:
    """A well-known module the name may be a typo of (`torchvison` -> `torchvision`)."""
    top = module.split(".")[0]
    known: Dict[str, None] = dict.fromkeys(list(IMPORT_TO_DIST) + list(extra))
    known.pop(top, None)
    hits = difflib.get_close_matches(top, list(known), n=1, cutoff=0.85)
    return hits[0] if hits else None
