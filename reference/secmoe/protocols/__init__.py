"""Two-party protocols on shares (spec/30-protocols.md): products, Boolean-to-arithmetic, multiplexing."""
