"""``python -m ccbt_engine`` runs the ``ccbt`` command line."""

from ccbt_engine.cli.main import main

if __name__ == "__main__":
    main()
