import time, sys, torch
from mmfer.models import create_model, list_models
torch.manual_seed(0)
x = torch.randn(32, 8, 1400); y = torch.randint(0, 8, (32,))
mask = torch.ones(32, 8, dtype=torch.bool); mask[::3, 5:] = False
names = sys.argv[1:] or list_models()
for name in names:
    m = create_model(name, in_features=1400, num_classes=8, hidden_size=128, num_layers=2)
    def step():
        m.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(m(x, mask), y)
        loss.backward()
    for _ in range(3): step()
    ts = []
    for _ in range(15):
        t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
    ts.sort()
    m.eval()
    with torch.no_grad():
        fs=[]
        for _ in range(10):
            t0=time.perf_counter(); m(x,mask); fs.append(time.perf_counter()-t0)
    fs.sort()
    print(f"{name:12s} fwd+bwd median {1e3*ts[len(ts)//2]:7.2f} ms  min {1e3*ts[0]:7.2f} ms | eval fwd {1e3*fs[len(fs)//2]:6.2f} ms | params {sum(p.numel() for p in m.parameters()):,}")
