# A speech-recognition recipe: corpus -> Kaldi data dirs -> fbank -> tokens -> LSTM-CTC -> WER.
#   snakemake --cores 8                                   # the default corpus (synth_digits)
#   snakemake --cores 8 --configfile conf/fsdd.yaml       # another corpus
# Each stage is one file under workflow/rules/ and runs one script of workflow/scripts/.
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from speechrecipe.cli.hooks import error_message, on_start, success_message
from speechrecipe.config import ConfigError
from speechrecipe.schema import check_config, load_schema

min_version("9.0")


configfile: f"{workflow.basedir}/config.yaml"  # defaults; --configfile overrides


SCHEMA = "workflow/schemas/config.schema.yaml"  # every key, its default and what it means
try:  # typed nested --config values, and a few lines per problem instead of the schema and config dumped
    check_config(config, load_schema(f"{workflow.basedir}/{SCHEMA}"))
except ConfigError as e:
    raise WorkflowError(str(e)) from None
validate(config, SCHEMA)  # fills in the defaults


report: "workflow/report/workflow.rst"  # snakemake --report report.html: this text, the rule graph, exp/<tag>/plots/


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"  # 1. data preparation and validation
include: "workflow/rules/features.smk"  # 2. fbank/MFCC in nj jobs, CMVN statistics
include: "workflow/rules/noise.smk"  # 3a. noisy copies of data sets (noise.*)
include: "workflow/rules/dae.smk"  # 3b. denoising-autoencoder pretraining (am.init: dae, decode.enhance)
include: "workflow/rules/tokens.smk"  # 4a. SentencePiece units
include: "workflow/rules/am.smk"  # 4b. LSTM-CTC acoustic model
include: "workflow/rules/decode.smk"  # 5. decoding and scoring
include: "workflow/rules/lm.smk"  # 5b. optional word n-gram LM and its weight (decode.use_lm)
include: "workflow/rules/report.smk"  # 6. figures and tables under exp/<tag>/plots/, for snakemake --report
include: "workflow/rules/export.smk"  # on demand: TorchScript, ONNX and a model bundle


# Seconds of work each: on a cluster they run on the submitting host instead of waiting in the queue.
localrules:
    all,
    validate_data,
    score,
    experiment_config,
    results,
    plots,


rule all:
    default_target: True
    input:
        f"{EXP}/results.tsv",
        f"{EXP}/RESULTS.md",
        rules.plots.output,
        DAE_PLOTS,  # the DAE's dev error by SNR, when a DAE is trained


onstart:
    on_start()  # records who holds the lock, so that a killed run's lock is recognised as stale (cli.lock)


onsuccess:
    print(success_message([f"{EXP}/results.tsv", f"{EXP}/RESULTS.md"], rules.results.input))


onerror:
    print(error_message(log))
