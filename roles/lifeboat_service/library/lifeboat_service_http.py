#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: lifeboat_service_http
short_description: A health URL polled a bounded number of times, or the smoke checks after a recovery
version_added: 0.1.0
description:
  - PRIVATE to role lifeboat_service; not part of the collection's interface.
  - With O(action=wait) - seed 003's C(curl -f .../health) in its retry loop, bounded - asks O(url) up to
    O(attempts) times, O(delay) seconds apart, until it answers O(status) and, when O(json) is given, each field
    of its JSON body equals the value given. Every attempt is reported (its time, its status or the error); when
    none succeeds the task fails with one line summing them up and the list in RV(attempts).
  - With O(action=smoke) - seed 003's checks after a recovery - the health URL once, a login that must yield a
    token (O(login)), a read of O(data) with that token (an C(Authorization) Bearer header), and an upload to O(upload)
    (multipart/form-data); each its own result in RV(checks), the task failing with the names of those that
    failed. The login's body (a password) and the token never appear in the result.
  - Nothing is changed on the host. The upload is the one request that changes the service (a file stored), so
    it makes the result changed when the service accepted it, and check mode does not send it - its check
    says what would have been sent. Every other request is a read and runs in check mode too.
options:
  action:
    description: C(wait) or C(smoke).
    type: str
    choices: [wait, smoke]
    default: wait
  url:
    description: The health URL.
    type: str
  status:
    description: The status the health URL must answer.
    type: int
    default: 200
  json:
    description: Fields of the health answer's JSON body and the value each must have (C(a.b) reaches into objects).
    type: dict
    default: {}
  attempts:
    description: With O(action=wait), how many times the health URL is asked before the task fails.
    type: int
    default: 10
  delay:
    description: Seconds between two attempts.
    type: float
    default: 3
  timeout:
    description: Seconds each request may take.
    type: float
    default: 5
  validate_certs:
    description: Check the server's TLS certificate (https URLs).
    type: bool
    default: true
  ca_path:
    description: A CA bundle to check the server's certificate against.
    type: path
  login:
    description: With O(action=smoke), the login that yields a token.
    type: dict
    suboptions:
      url:
        description: The login URL (POST).
        type: str
        required: true
      body:
        description: The JSON body sent (user name and password); never shown.
        type: dict
        required: true
        no_log: true
      token_field:
        description: The field of the answer's JSON holding the token (C(a.b) reaches into objects).
        type: str
        default: token
        no_log: false
  data:
    description: With O(action=smoke), a URL read (GET) with the token; it must answer 2xx.
    type: dict
    suboptions:
      url:
        description: The data URL.
        type: str
        required: true
      min_rows:
        description: The answer's rows (a JSON list, or the list under C(rows)) must be at least this many.
        type: int
        default: 0
  upload:
    description: With O(action=smoke), a small file sent (POST multipart/form-data) with the token; it must answer 2xx.
    type: dict
    suboptions:
      url:
        description: The upload URL.
        type: str
        required: true
      field:
        description: The form field of the file.
        type: str
        default: file
      filename:
        description: The file's name.
        type: str
        default: lifeboat-smoke.txt
      content:
        description: The file's content.
        type: str
        default: lifeboat smoke check
attributes:
  check_mode:
    support: partial
    description: The health URL, the login and the data read run in check mode; the upload is not sent (its check is ok, status null, detail "not sent in check mode - would POST ...").
  diff_mode:
    support: none
author:
  - lifeboat developers
'''

EXAMPLES = r'''
- name: Wait for the backend's health URL
  lifeboat_service_http:
    url: http://127.0.0.1:5100/api/v1/health
    json: {status: ok}
    attempts: 10
    delay: 3
'''

RETURN = r'''
attempts:
  description: Each request to the health URL - attempt number, UTC time, status (or null), error, elapsed_ms.
  returned: action=wait, success and failure
  type: list
  elements: dict
checks:
  description: Each smoke check - name, ok, status, detail, elapsed_ms.
  returned: action=smoke
  type: list
  elements: dict
changed:
  description: With O(action=smoke), whether the upload was sent and accepted (a file stored by the service).
  returned: always
  type: bool
'''

import json
import time
import uuid
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.error import HTTPError
from ansible.module_utils.urls import open_url


class ServiceError(Exception):
    """The one failure path: a one-line message and the facts worth returning with it."""

    def __init__(self, msg, **facts):
        super(ServiceError, self).__init__(msg)
        self.msg = msg
        self.facts = facts


def first_line(text, limit=200):
    text = ' '.join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def field(document, path):
    """document[a][b] for path a.b; KeyError when a step is missing."""
    for part in path.split('.'):
        if not isinstance(document, dict) or part not in document:
            raise KeyError(path)
        document = document[part]
    return document


class Client(object):
    def __init__(self, params):
        self.params = params

    def request(self, url, method='GET', body=None, headers=None):
        """(status, body bytes, elapsed ms) of one request; an answer outside 2xx is a status too. A request
        that gets no answer raises ServiceError with the reason."""
        started = time.monotonic()
        try:
            response = open_url(url, method=method, data=body, headers=headers or {}, timeout=self.params['timeout'],
                                validate_certs=self.params['validate_certs'], ca_path=self.params['ca_path'],
                                follow_redirects='none')
            status, data = response.getcode(), response.read()
        except HTTPError as exc:
            status, data = exc.code, exc.read() if exc.fp else b''
        except Exception as exc:  # connection refused, timeout, TLS: the attempt's error, in one line
            reason = getattr(exc, 'reason', None) or exc
            raise ServiceError(first_line(reason) or type(exc).__name__,
                               elapsed_ms=int((time.monotonic() - started) * 1000))
        return status, data, int((time.monotonic() - started) * 1000)


def health_problem(params, status, data):
    """Why a health answer is not the expected one, or None."""
    if status != params['status']:
        return 'answered %s, not %s' % (status, params['status'])
    if not params['json']:
        return None
    try:
        document = json.loads(data.decode('utf-8'))
    except ValueError:
        return 'answered %s but its body is not JSON' % status
    for key, expected in params['json'].items():
        try:
            value = field(document, key)
        except KeyError:
            return 'its JSON has no field %s' % key
        if value != expected:
            return 'its JSON field %s is %s, not %s' % (key, json.dumps(value), json.dumps(expected))
    return None


def wait(client, params):
    attempts = []
    for number in range(1, params['attempts'] + 1):
        if number > 1:
            time.sleep(params['delay'])
        entry = dict(attempt=number, time=datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ'),
                     status=None, error=None)
        try:
            status, data, entry['elapsed_ms'] = client.request(params['url'])
            entry['status'] = status
            entry['error'] = health_problem(params, status, data)
        except ServiceError as exc:
            entry.update(error=exc.msg, elapsed_ms=exc.facts['elapsed_ms'])
        attempts.append(entry)
        if entry['error'] is None:
            return dict(changed=False, healthy=True, url=params['url'], attempts=attempts)
    summary = '; '.join('%d: %s' % (a['attempt'], a['error']) for a in attempts)
    raise ServiceError('%s did not answer as expected after %d attempts %s s apart (%s); look at the service\'s '
                       'log, then raise lifeboat_service_attempts or lifeboat_service_delay if it only needs longer'
                       % (params['url'], len(attempts), params['delay'], summary),
                       healthy=False, url=params['url'], attempts=attempts)


def multipart(field_name, filename, content):
    boundary = 'lifeboat-' + uuid.uuid4().hex
    body = ('--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
            'Content-Type: application/octet-stream\r\n\r\n' % (boundary, field_name, filename)).encode('utf-8')
    body += content.encode('utf-8') + ('\r\n--%s--\r\n' % boundary).encode('utf-8')
    return body, 'multipart/form-data; boundary=%s' % boundary


def smoke(client, params, check_mode=False):
    """The checks; the upload (it stores a file on the service) is only described in check mode."""
    checks = []

    def check(name, run):
        entry = dict(name=name, ok=False, status=None, detail=None, elapsed_ms=None)
        try:
            entry.update(run())
        except ServiceError as exc:
            entry.update(detail=exc.msg, elapsed_ms=exc.facts.get('elapsed_ms'))
        checks.append(entry)
        return entry

    def health():
        status, data, elapsed = client.request(params['url'])
        problem = health_problem(params, status, data)
        return dict(ok=problem is None, status=status, detail=problem or 'answered %s' % status, elapsed_ms=elapsed)

    token = []

    def login():
        spec = params['login']
        status, data, elapsed = client.request(spec['url'], method='POST', body=json.dumps(spec['body']),
                                               headers={'Content-Type': 'application/json'})
        result = dict(status=status, elapsed_ms=elapsed)
        if not 200 <= status < 300:
            return dict(result, detail='answered %s' % status)
        try:
            value = field(json.loads(data.decode('utf-8')), spec['token_field'])
        except (ValueError, KeyError):
            return dict(result, detail='answered %s without a token in field %s' % (status, spec['token_field']))
        if not isinstance(value, str) or not value:
            return dict(result, detail='field %s of the answer is not a token' % spec['token_field'])
        token.append(value)
        return dict(result, ok=True, detail='a token in field %s' % spec['token_field'])

    def authorization():
        if params['login'] and not token:
            raise ServiceError('not tried: the login gave no token')
        return {'Authorization': 'Bearer %s' % token[0]} if token else {}

    def data():
        spec = params['data']
        status, body, elapsed = client.request(spec['url'], headers=authorization())
        result = dict(status=status, elapsed_ms=elapsed)
        if not 200 <= status < 300:
            return dict(result, detail='answered %s' % status)
        try:
            document = json.loads(body.decode('utf-8'))
        except ValueError:
            document = None
        rows = document.get('rows') if isinstance(document, dict) else document
        result['rows'] = len(rows) if isinstance(rows, list) else None
        if spec['min_rows'] and (result['rows'] or 0) < spec['min_rows']:
            return dict(result, detail='%s rows, fewer than %d' % (result['rows'], spec['min_rows']))
        return dict(result, ok=True, detail='answered %s%s' % (status, '' if result['rows'] is None
                                                              else ' with %d rows' % result['rows']))

    def upload():
        spec = params['upload']
        if check_mode:
            return dict(ok=True, status=None, detail='not sent in check mode: would POST %s (%d bytes) to %s'
                        % (spec['filename'], len(spec['content'].encode('utf-8')), spec['url']))
        body, content_type = multipart(spec['field'], spec['filename'], spec['content'])
        headers = dict(authorization(), **{'Content-Type': content_type})
        status, _, elapsed = client.request(spec['url'], method='POST', body=body, headers=headers)
        ok = 200 <= status < 300
        return dict(ok=ok, status=status, elapsed_ms=elapsed, stored=ok,
                    detail='answered %s for %s (%d bytes)' % (status, spec['filename'], len(spec['content'].encode('utf-8'))))

    if params['url']:
        check('health', health)
    for name, run in (('login', login), ('data', data), ('upload', upload)):
        if params[name]:
            check(name, run)
    # The upload's file stays on the service: the one change a smoke check makes.
    changed = any(c.pop('stored', False) for c in checks)
    failed = [c['name'] for c in checks if not c['ok']]
    if failed:
        raise ServiceError('smoke checks failed: %s' % ', '.join('%s (%s)' % (c['name'], c['detail']) for c in checks
                                                                if not c['ok']),
                           changed=changed, checks=checks, failed_checks=failed)
    return dict(changed=changed, checks=checks, failed_checks=[])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type='str', choices=['wait', 'smoke'], default='wait'),
            url=dict(type='str'),
            status=dict(type='int', default=200),
            json=dict(type='dict', default={}),
            attempts=dict(type='int', default=10),
            delay=dict(type='float', default=3),
            timeout=dict(type='float', default=5),
            validate_certs=dict(type='bool', default=True),
            ca_path=dict(type='path'),
            login=dict(type='dict', options=dict(
                url=dict(type='str', required=True),
                body=dict(type='dict', required=True, no_log=True),
                token_field=dict(type='str', default='token', no_log=False))),
            data=dict(type='dict', options=dict(
                url=dict(type='str', required=True),
                min_rows=dict(type='int', default=0))),
            upload=dict(type='dict', options=dict(
                url=dict(type='str', required=True),
                field=dict(type='str', default='file'),
                filename=dict(type='str', default='lifeboat-smoke.txt'),
                content=dict(type='str', default='lifeboat smoke check'))),
        ),
        required_if=[('action', 'wait', ['url'])],
        supports_check_mode=True,
    )
    params = module.params
    try:
        if params['attempts'] < 1 or params['delay'] < 0 or params['timeout'] <= 0:
            raise ServiceError('attempts must be 1 or more, delay 0 or more and timeout above 0 (seconds)')
        client = Client(params)
        result = wait(client, params) if params['action'] == 'wait' else smoke(client, params, module.check_mode)
    except ServiceError as exc:
        module.fail_json(msg=exc.msg, **exc.facts)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
