"""Tests of siamese, laid out like src/siamese."""
