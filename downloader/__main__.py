"""``python -m downloader``."""

from downloader.cli import main

main()
