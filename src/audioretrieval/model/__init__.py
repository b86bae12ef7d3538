"""The dual encoder: PaSST audio branch, Hugging Face text branch, shared embedding space."""
