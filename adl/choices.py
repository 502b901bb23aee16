"""Names the command line offers, kept free of heavy imports so that `adl --help`, `adl psnr`
or `adl table` start without loading torch."""

DATA_LOSSES = ("adl", "lfl", "lfl-gauss", "bicubic", "avgpool")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
SR_MODELS = ("edsr", "rrdb")
