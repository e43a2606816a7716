"""Stand-in for timm (the official MAE block imports two helpers from it)."""
