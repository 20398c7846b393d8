"""Structure-aware adversarial fuzzing of what a worker consumes, through a real `runeworker
serve` (README.md in this folder)."""
