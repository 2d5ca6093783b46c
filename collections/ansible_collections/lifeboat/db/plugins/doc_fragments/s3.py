# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # S3 options shared by the modules that reach an s3:// repository or offsite copy.
    DOCUMENTATION = r'''
options:
  s3_endpoint_url:
    description:
      - URL of an S3-compatible endpoint (MinIO, Ceph, a test server). Default is AWS S3 for O(s3_region).
    type: str
  s3_region:
    description: AWS region of the bucket. Default is boto3's (C(AWS_DEFAULT_REGION), C(~/.aws/config)).
    type: str
  aws_profile:
    description: Named profile from C(~/.aws/credentials) on the target host.
    type: str
  aws_access_key:
    description:
      - Access key id. Without it (and O(aws_secret_key)), boto3's usual chain is used - environment,
        C(~/.aws/credentials), an instance or task role.
    type: str
  aws_secret_key:
    description: Secret access key; never logged or returned.
    type: str
  aws_session_token:
    description: Session token of temporary credentials; never logged or returned.
    type: str
  s3_storage_class:
    description:
      - Storage class of the uploaded data files. Manifests always use C(STANDARD) so a repository
        can be listed without restoring anything from GLACIER.
    type: str
    default: STANDARD
    choices: [STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE]
  s3_sse:
    description: Server-side encryption of uploaded objects.
    type: str
    default: none
    choices: [none, AES256, 'aws:kms']
  s3_sse_kms_key_id:
    description: KMS key id or ARN for O(s3_sse=aws:kms); default is the account's C(aws/s3) key.
    type: str
  s3_part_size_mb:
    description:
      - Size of one multipart upload part in MiB (5 to 5120). Memory used is about
        (O(s3_concurrency) + 1) parts.
    type: int
    default: 16
  s3_concurrency:
    description: Parts uploaded at once (1 to 32).
    type: int
    default: 4
requirements:
  - boto3 on the target host (only when an S3 option is used)
notes:
  - Every upload is checked - each part carries its SHA-256, which S3 verifies on receipt, and the
    checksum S3 reports for the stored object is compared with the one computed from the bytes sent.
'''
