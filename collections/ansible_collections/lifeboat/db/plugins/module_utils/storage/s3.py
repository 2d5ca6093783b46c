# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reaching S3 (or any S3-compatible store): `s3://` URLs, the S3 options every module shares, the
boto3 client they make, and one line an operator can act on for each failure.

Backup sets in S3 are the store's (s3_store.S3Store); their uploads are s3_upload's.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import (BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError,
                                     ParamValidationError)
    HAS_BOTO3 = True
except ImportError:  # reported as a clear error when an S3 option is used
    HAS_BOTO3 = False

STORAGE_CLASSES = ('STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR', 'GLACIER',
                   'DEEP_ARCHIVE')
# Objects in these classes must be restored (thawed) before they can be read.
ARCHIVE_CLASSES = ('GLACIER', 'DEEP_ARCHIVE')
SSE_CHOICES = ('none', 'AES256', 'aws:kms')
BUCKET_NAME = re.compile(r'^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$')
MB = 1024 * 1024


def is_s3_url(value):
    return isinstance(value, str) and value.startswith('s3://')


def s3_argument_spec():
    """Options shared by every module that reaches S3 (doc fragment lifeboat.db.s3)."""
    return dict(
        s3_endpoint_url=dict(type='str'),
        s3_region=dict(type='str'),
        aws_profile=dict(type='str'),
        aws_access_key=dict(type='str', no_log=False),
        aws_secret_key=dict(type='str', no_log=True),
        aws_session_token=dict(type='str', no_log=True),
        s3_storage_class=dict(type='str', default='STANDARD', choices=list(STORAGE_CLASSES)),
        s3_sse=dict(type='str', default='none', choices=list(SSE_CHOICES)),
        s3_sse_kms_key_id=dict(type='str', no_log=False),
        s3_part_size_mb=dict(type='int', default=16),
        s3_concurrency=dict(type='int', default=4),
    )


class S3Error(LifeboatError):
    """S3 could not be asked (unreachable, throttled, refused): says nothing about a set's content."""


class S3Location(object):
    """`s3://bucket/prefix`, parsed and checked."""

    def __init__(self, url):
        if not is_s3_url(url):
            raise LifeboatError('%r is not an S3 URL; write it as s3://bucket/prefix' % (url,))
        bucket, _, prefix = url[len('s3://'):].partition('/')
        if not BUCKET_NAME.match(bucket):
            raise LifeboatError('%r does not name a valid S3 bucket (3-63 lowercase letters, digits, dots and '
                                'hyphens); write it as s3://bucket/prefix' % (url,))
        self.bucket = bucket
        self.prefix = prefix.strip('/')
        self.url = 's3://%s%s' % (bucket, '/' + self.prefix if self.prefix else '')

    def key(self, *parts):
        return '/'.join(([self.prefix] if self.prefix else []) + list(parts))


class S3Settings(object):
    def __init__(self, params):
        if not HAS_BOTO3:
            raise LifeboatError('boto3 is required on the target host for S3 repositories; run playbooks/prepare.yml '
                                'with lifeboat_host_s3: true (python3-boto3 on Debian), or install it in the Python '
                                'that runs the modules')
        self.endpoint_url = params.get('s3_endpoint_url') or None
        self.region = params.get('s3_region') or None
        self.profile = params.get('aws_profile') or None
        self.access_key = params.get('aws_access_key') or None
        self.secret_key = params.get('aws_secret_key') or None
        self.session_token = params.get('aws_session_token') or None
        self.storage_class = params.get('s3_storage_class') or 'STANDARD'
        self.sse = params.get('s3_sse') or 'none'
        self.kms_key_id = params.get('s3_sse_kms_key_id') or None
        part_mb = params.get('s3_part_size_mb') or 16
        self.concurrency = params.get('s3_concurrency') or 4
        if bool(self.access_key) != bool(self.secret_key):
            raise LifeboatError('aws_access_key and aws_secret_key go together: set both, or neither to use '
                                "boto3's credential chain (environment, ~/.aws, instance role)")
        if self.kms_key_id and self.sse != 'aws:kms':
            raise LifeboatError('s3_sse_kms_key_id needs s3_sse: aws:kms (it is %s)' % self.sse)
        if not 5 <= part_mb <= 5120:
            raise LifeboatError('s3_part_size_mb must be between 5 and 5120 (S3 part size limits), got %d' % part_mb)
        if not 1 <= self.concurrency <= 32:
            raise LifeboatError('s3_concurrency must be between 1 and 32, got %d' % self.concurrency)
        self.part_size = part_mb * MB

    def upload_args(self, storage_class=None):
        args = dict(StorageClass=storage_class or self.storage_class)
        if self.sse != 'none':
            args['ServerSideEncryption'] = self.sse
            if self.kms_key_id:
                args['SSEKMSKeyId'] = self.kms_key_id
        return args

    def client(self):
        session = boto3.session.Session(aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                                        aws_session_token=self.session_token, profile_name=self.profile,
                                        region_name=self.region)
        config = Config(connect_timeout=10, read_timeout=120, max_pool_connections=self.concurrency + 2,
                        retries=dict(max_attempts=3, mode='standard'))
        return session.client('s3', endpoint_url=self.endpoint_url, config=config)


def explain(exc, what, location, endpoint):
    """One line an operator can act on, for any boto3 failure."""
    where = endpoint or 'AWS S3'
    if isinstance(exc, NoCredentialsError):
        return ('no AWS credentials found while %s; set aws_access_key and aws_secret_key, or configure '
                "boto3's chain (AWS_ACCESS_KEY_ID, ~/.aws/credentials, an instance role)" % what)
    if isinstance(exc, EndpointConnectionError) or (isinstance(exc, BotoCoreError) and 'connect' in str(exc).lower()):
        return ('cannot reach the S3 endpoint %s while %s (%s); check s3_endpoint_url, the network and the '
                'firewall' % (where, what, exc))
    if isinstance(exc, ParamValidationError):
        return 'invalid S3 request while %s: %s' % (what, str(exc).replace('\n', ' '))
    if isinstance(exc, ClientError):
        error = exc.response.get('Error', {})
        code = error.get('Code', '')
        message = error.get('Message') or code
        if code == 'NoSuchBucket' or (code in ('404', 'NotFound') and 'bucket' in what):
            return ('bucket %r does not exist at %s (while %s); create it or fix the s3:// URL'
                    % (location.bucket, where, what))
        if code in ('InvalidAccessKeyId', 'InvalidClientTokenId'):
            return ('S3 does not know the access key (InvalidAccessKeyId) while %s; check aws_access_key or the '
                    'credentials boto3 found' % what)
        if code == 'SignatureDoesNotMatch':
            return ('S3 rejected the request signature while %s: the secret key does not match the access key; '
                    'check aws_secret_key' % what)
        if code in ('AccessDenied', '403', 'Forbidden'):
            return ('access denied by S3 while %s on %s: wrong credentials, or they lack s3:ListBucket, '
                    's3:GetObject, s3:PutObject and s3:DeleteObject on it' % (what, location.url))
        return 'S3 refused %s on %s: %s (%s)' % (what, location.url, message, code)
    return 'S3 failed while %s: %s' % (what, exc)

