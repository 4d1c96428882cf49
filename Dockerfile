# The Lambda container image: the AWS Lambda Python base image, the runtime
# requirements and nothing else, then the code and the bundled model.
#
# Python 3.12, not 3.11: the 3.11 image runs on Amazon Linux 2 (glibc 2.26),
# for which the pinned numpy and onnxruntime publish no wheels; the 3.12 image
# runs on Amazon Linux 2023 (glibc 2.34).
FROM public.ecr.aws/lambda/python:3.12

COPY requirements.txt ${LAMBDA_TASK_ROOT}/
RUN pip install --no-cache-dir --only-binary=:all: \
        -r ${LAMBDA_TASK_ROOT}/requirements.txt --target ${LAMBDA_TASK_ROOT}

COPY handler.py ${LAMBDA_TASK_ROOT}/
COPY adapters/ ${LAMBDA_TASK_ROOT}/adapters/
COPY sign2text_core/ ${LAMBDA_TASK_ROOT}/sign2text_core/
COPY models/ ${LAMBDA_TASK_ROOT}/models/

ENV SIGN2TEXT_MODEL_DIR=${LAMBDA_TASK_ROOT}/models/asl-gislr250

CMD ["handler.lambda_handler"]
