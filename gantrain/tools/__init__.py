"""What users do with a trained generator: generate, walk, arithmetic, invert, dissect."""
