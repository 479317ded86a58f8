"""Stand-ins for what the colab and paper profiles reach over the network: hub models, hub datasets and a paid
OpenAI-compatible endpoint. Used by the stand-in run, the tests and the benchmarks; not imported by the chapters."""
