"""The quantum layer: one circuit, two simulators (PennyLane QNode and a plain-torch statevector)."""
