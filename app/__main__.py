"""``python -m app`` is the ``cnnvis`` command."""

from app.cli import main

if __name__ == "__main__":
    main()
