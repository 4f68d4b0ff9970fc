"""Chat models: the offline rules model, the scripted test model and the factory for them all."""
