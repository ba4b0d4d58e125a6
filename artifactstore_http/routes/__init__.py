"""The routes, one module per resource group; each calls the public ``ArtifactStore`` API."""
