"""Package metadata comes from settings.ini (nbdev's single source of project settings)."""
from configparser import ConfigParser
import re, setuptools, shlex

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
console_scripts = shlex.split(cfg.get('console_scripts', ''))
licenses = {'apache2': 'Apache-2.0'}  # nbdev's licence names -> SPDX
statuses = {'1': '1 - Planning', '2': '2 - Pre-Alpha', '3': '3 - Alpha', '4': '4 - Beta', '5': '5 - Production/Stable'}

def long_description() -> str:
    "README.md, its links into the repository made absolute, so that they resolve on the package index too."
    text = open('README.md', encoding='utf-8').read()
    blob = cfg['git_url'] + '/blob/' + cfg['branch'] + '/'
    raw = cfg['git_url'].replace('https://github.com/', 'https://raw.githubusercontent.com/') + '/' + cfg['branch'] + '/'
    text = re.sub(r'!\[([^\]]*)\]\((?!https?:|#)([^)]+)\)', lambda m: f'![{m[1]}]({raw}{m[2]})', text)
    return re.sub(r'(?<!!)\[([^\]]*)\]\((?!https?:|#)([^)]+)\)', lambda m: f'[{m[1]}]({blob}{m[2]})', text)

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    author=cfg['author'],
    author_email=cfg['author_email'],
    license=licenses[cfg['license']],
    license_files=['LICENSE'],
    classifiers=[f"Development Status :: {statuses[cfg['status']]}",
                 f"Intended Audience :: {cfg['audience']}",
                 f"Natural Language :: {cfg['language']}",
                 'Operating System :: POSIX :: Linux',
                 'Programming Language :: Python :: 3',
                 'Programming Language :: Python :: 3 :: Only',
                 f"Programming Language :: Python :: {cfg['min_python']}",
                 'Framework :: Jupyter',
                 'Topic :: Scientific/Engineering :: Artificial Intelligence',
                 'Topic :: Scientific/Engineering :: Image Processing'],
    keywords=cfg['keywords'].split(),
    url=cfg['git_url'],
    project_urls={'Documentation': cfg['doc_host'] + cfg['doc_baseurl'], 'Source': cfg['git_url'],
                  'Issues': cfg['git_url'] + '/issues'},
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements},
    python_requires='>=' + cfg['min_python'],
    long_description=long_description(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': console_scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
)
