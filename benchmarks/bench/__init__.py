"""What a turn costs on top of the model: the app beside a stateless forwarder, on this machine.

    scripts/bench [--smoke] [--json PATH] [--images DIR]      (python -m benchmarks.bench)

Starts Azurite, the model and managed-identity stand-ins (`python -m standins`) and the app
under uvicorn as scripts/run serves it, twice: once straight on Azurite, for every timing, and
once through a loopback proxy that records each storage request with its timestamps. Beside them
runs the baseline, forwarder.py: the same openai SDK call, no history, no storage, in a
process of its own like the app's. The stand-in answers after a set latency (the `[[sleep:S]]`
directive in each message), so what a side takes beyond it is that side's overhead.

Sides are interleaved (every round runs one sample of each, in a shuffled order), so drift of the
shared machine hits all alike. Measured, medians and p99:

- per-turn overhead over the stand-in's own latency, on both doors: AI Chat Protocol `/api/chat`
  and `/api/chat/stream` (to the first delta), OpenAI's `/api/v1/responses` with `conversation`,
  plain and `stream: true`; the forwarder's on the same doors; the stand-in timed alone;
- the storage floor: the same history read and one transaction made directly with the SDK on the
  same Azurite, with the rows the app writes: wall time and CPU;
- CPU per turn of each serving process, from /proc/<pid>/stat (utime + stime) between its turns;
- storage requests per continuing turn, and how many run one after another;
- turn cost in conversations of 100, 1,000 and 10,000 messages, the window full in each;
- 1, 16, 64 and 128 simultaneous turns with a 2 s model: wall time against the ideal;
- cold start: `import function_app` against importing the SDKs it needs, in fresh interpreters,
  and the first request after start;
- peak memory (VmHWM) of each serving process;
- where a turn's CPU goes: py-spy samples of the serving process, split by side.

Then it prints each goal's ratio with PASS or MISS, writes every figure to a JSON file (default
.bench/bench.json) and, but for --smoke, draws the pictures (default into .bench/). `--smoke` runs
few turns on small sizes, needs neither matplotlib nor py-spy, and takes a minute or two. Absolute
figures are Azurite on loopback on this machine, not Azure: compare the sides, not milliseconds
with a deployment.
"""
