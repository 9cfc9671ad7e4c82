"""`python -m siamese` runs the command line."""

from siamese.cli import main

if __name__ == "__main__":
    main()
