"""Network reads that fail the way a flaky mirror or hub fails (argv: how, base URL or host)."""

import sys

how, where = sys.argv[1], sys.argv[2]
print("step 0/1000 fetching assets", flush=True)
if how == "hub_file":
    from huggingface_hub import hf_hub_download

    hf_hub_download("tiny-org/tiny-bert", "config.json")
elif how == "hub_config":
    from transformers import AutoConfig

    AutoConfig.from_pretrained("tiny-org/tiny-bert")
elif how == "hub_snapshot":
    from huggingface_hub import snapshot_download

    snapshot_download("tiny-org/tiny-dataset", repo_type="dataset")
elif how == "requests":
    import requests

    r = requests.get(where + "/shards/train-00001.tar", timeout=10)
    r.raise_for_status()
elif how == "urllib":
    import urllib.request

    urllib.request.urlopen(where + "/shards/train-00001.tar", timeout=10).read()
elif how == "torch_hub":
    import torch

    torch.hub.download_url_to_file(where + "/weights/resnet18.pth", "resnet18.pth")
